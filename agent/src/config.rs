//! The agent's configuration: `/etc/berth/agent.toml`, `BERTH_*` environment
//! variables and command-line flags, layered as flags over environment over
//! file over defaults, and validated into a [`Config`] before any socket opens.
//!
//! Parsing never reads the process environment itself: callers pass the
//! environment as a map, so tests layer sources without global state. Every
//! validation error names the setting and where its value came from; `main`
//! turns any [`ConfigError`] into exit code 64.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use berth_proto::names::{check_attribute_name, check_attribute_value, check_cluster_name};
use serde::Deserialize;

use tonic::codegen::http::Uri;

/// File name of the agent's identity inside the state directory.
pub const IDENTITY_FILE: &str = "identity.json";
/// The task metadata endpoint's port (the ECS agent's metadata port, 51679).
pub const DEFAULT_TASK_METADATA_PORT: u16 = 51679;
/// Where `/metrics` listens unless configured: loopback only, so the
/// per-task series are not on the host's public interfaces.
pub const DEFAULT_METRICS_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9465);

/// When to pull, with the meanings of amazon-ecs-agent's
/// `ECS_IMAGE_PULL_BEHAVIOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull; if the pull fails, use the cached image if there is one.
    #[default]
    Default,
    /// Pull; if the pull fails, fail.
    Always,
    /// Pull only if this agent has not pulled the image before (its record
    /// is in Berth's containerd namespace); otherwise use it.
    Once,
    /// Use the cached image if there is one; otherwise pull. (ECS also turns
    /// image cleanup off with this behaviour; the agent's GC loop decides.)
    PreferCached,
}

/// A pull policy name that is none of `default|always|once|prefer-cached`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image pull behavior {0:?}: expected default, always, once or prefer-cached")]
pub struct ParsePullPolicyError(pub String);

impl FromStr for PullPolicy {
    type Err = ParsePullPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(PullPolicy::Default),
            "always" => Ok(PullPolicy::Always),
            "once" => Ok(PullPolicy::Once),
            "prefer-cached" => Ok(PullPolicy::PreferCached),
            other => Err(ParsePullPolicyError(other.to_owned())),
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Default => "default",
            PullPolicy::Always => "always",
            PullPolicy::Once => "once",
            PullPolicy::PreferCached => "prefer-cached",
        })
    }
}

/// Where the configuration file is read from when neither `--config` nor
/// `BERTH_CONFIG` names one. A missing default file is not an error.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/agent.toml";
/// Where the agent keeps its identity unless `state_dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/berth/agent";
/// The cluster an agent joins unless told otherwise (ECS's default too).
pub const DEFAULT_CLUSTER: &str = "default";
/// Memory (MiB) kept back from tasks for the OS and the agent itself.
pub const DEFAULT_RESERVED_MEMORY_MIB: u64 = 256;
/// Dynamic host ports: below the kernel's ephemeral range (32768–60999), so
/// they never collide with the source ports of outgoing connections.
pub const DEFAULT_PORT_RANGE: PortRange = PortRange {
    start: 20000,
    end: 32767,
};
/// The port of the agent's own task-metadata endpoint (as ECS's agent).
pub const AGENT_METADATA_PORT: u16 = 51679;
/// TCP ports never handed out unless `reserved_ports` says otherwise.
pub const DEFAULT_RESERVED_PORTS: [u16; 2] = [22, AGENT_METADATA_PORT];

/// Names of the environment variables, one per setting (`BERTH_<UPPER_SNAKE>`).
pub mod env {
    /// Path of the configuration file (same as `--config`).
    pub const CONFIG: &str = "BERTH_CONFIG";
    pub const SCHEDULER: &str = "BERTH_SCHEDULER";
    pub const CLUSTER: &str = "BERTH_CLUSTER";
    pub const STATE_DIR: &str = "BERTH_STATE_DIR";
    pub const RESERVED_MEMORY_MIB: &str = "BERTH_RESERVED_MEMORY_MIB";
    pub const CPU_UNITS: &str = "BERTH_CPU_UNITS";
    /// `START-END`, e.g. `20000-32767`.
    pub const PORT_RANGE: &str = "BERTH_PORT_RANGE";
    /// Comma-separated, e.g. `22,2375`.
    pub const RESERVED_PORTS: &str = "BERTH_RESERVED_PORTS";
    /// Comma-separated, e.g. `53,123`.
    pub const RESERVED_UDP_PORTS: &str = "BERTH_RESERVED_UDP_PORTS";
    pub const AVAILABILITY_ZONE: &str = "BERTH_AVAILABILITY_ZONE";
    pub const INSTANCE_TYPE: &str = "BERTH_INSTANCE_TYPE";
    /// `name=value,name2=value2`.
    pub const CUSTOM_ATTRIBUTES: &str = "BERTH_CUSTOM_ATTRIBUTES";
    pub const HOSTNAME: &str = "BERTH_HOSTNAME";
    /// `text` or `json`.
    pub const LOG_FORMAT: &str = "BERTH_LOG_FORMAT";
    pub const CONTAINERD_SOCKET: &str = "BERTH_CONTAINERD_SOCKET";
    pub const CONTAINERD_NAMESPACE: &str = "BERTH_CONTAINERD_NAMESPACE";
    /// A duration, e.g. `30s`.
    pub const STOP_TIMEOUT: &str = "BERTH_STOP_TIMEOUT";
    /// A duration, e.g. `3h`.
    pub const TASK_CLEANUP_WAIT: &str = "BERTH_TASK_CLEANUP_WAIT";
    /// `default`, `always`, `once` or `prefer-cached`.
    pub const IMAGE_PULL_BEHAVIOR: &str = "BERTH_IMAGE_PULL_BEHAVIOR";
    /// Path of a Docker `config.json` with registry credentials.
    pub const DOCKER_CONFIG: &str = "BERTH_DOCKER_CONFIG";
    /// Comma-separated `host:port` registries reached over plain HTTP.
    pub const INSECURE_REGISTRIES: &str = "BERTH_INSECURE_REGISTRIES";
    /// A size, e.g. `10m`.
    pub const LOG_MAX_SIZE: &str = "BERTH_LOG_MAX_SIZE";
    pub const LOG_MAX_FILES: &str = "BERTH_LOG_MAX_FILES";
    /// Comma-separated directories holding the CNI plugins.
    pub const CNI_BIN_DIRS: &str = "BERTH_CNI_BIN_DIRS";
    pub const BRIDGE: &str = "BERTH_BRIDGE";
    /// A CIDR, e.g. `10.213.0.0/16`; unset: one that fits no host route.
    pub const BRIDGE_SUBNET: &str = "BERTH_BRIDGE_SUBNET";
    pub const CGROUP_PARENT: &str = "BERTH_CGROUP_PARENT";
    /// A duration (ECS_IMAGE_MINIMUM_CLEANUP_AGE), e.g. `1h`.
    pub const IMAGE_CLEANUP_MIN_AGE: &str = "BERTH_IMAGE_CLEANUP_MIN_AGE";
    /// A duration (ECS_IMAGE_CLEANUP_INTERVAL), e.g. `30m`.
    pub const IMAGE_CLEANUP_INTERVAL: &str = "BERTH_IMAGE_CLEANUP_INTERVAL";
    /// A duration, 1s–60s (default 10s): how often running tasks' usage is
    /// sent to the scheduler (`docs/stats.md`).
    pub const STATS_INTERVAL: &str = "BERTH_STATS_INTERVAL";
    /// ECS_NUM_IMAGES_DELETE_PER_CYCLE.
    pub const IMAGE_CLEANUP_PER_CYCLE: &str = "BERTH_IMAGE_CLEANUP_PER_CYCLE";
    /// `true` (default) or `false`: the task metadata endpoint v4.
    pub const TASK_METADATA: &str = "BERTH_TASK_METADATA";
    /// The endpoint's port on the bridge's gateway address (default 51679).
    pub const TASK_METADATA_PORT: &str = "BERTH_TASK_METADATA_PORT";
    /// The address containers get as `BERTH_HOST_IP` (default: the address
    /// of the interface of the host's default route).
    pub const TASK_HOST_IP: &str = "BERTH_TASK_HOST_IP";
    /// The IPv4 address load balancers reach this host's task ports on
    /// (sent in Hello); unset: the scheduler uses the connection's peer
    /// address.
    pub const ADVERTISE_ADDRESS: &str = "BERTH_ADVERTISE_ADDRESS";
    /// Where Prometheus' `GET /metrics` listens (`address:port`), or `off`.
    pub const METRICS_LISTEN: &str = "BERTH_METRICS_LISTEN";
}

/// A duration written like `30s`, `5m`, `3h` (humantime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub std::time::Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("not a duration like \"30s\" or \"3h\": {e}"))
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A size in bytes written like `10m`, `512k`, `1g` or a plain number
/// (Docker's json-file `max-size` syntax; k/m/g are powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').unwrap_or(&t);
        let (num, mult) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 1u64 << 10),
            Some('m') => (&t[..t.len() - 1], 1 << 20),
            Some('g') => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        let n: u64 = num
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a size like \"10m\""))?;
        n.checked_mul(mult)
            .filter(|v| *v > 0)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is not a usable size"))
    }
}

impl TryFrom<String> for ByteSize {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Settings of the task runtime (containerd, images, logs, networking,
/// cgroups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub containerd_socket: PathBuf,
    pub containerd_namespace: String,
    /// Default stopTimeout of containers that set none (ECS: 30 s).
    pub stop_timeout: std::time::Duration,
    /// How long stopped tasks' containers, snapshots and logs are kept
    /// (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION, default 3 h).
    pub task_cleanup_wait: std::time::Duration,
    pub image_pull_behavior: PullPolicy,
    pub docker_config: Option<PathBuf>,
    pub insecure_registries: Vec<String>,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub cni_bin_dirs: Vec<PathBuf>,
    pub bridge: String,
    pub bridge_subnet: Option<String>,
    pub cgroup_parent: String,
    pub image_cleanup_min_age: std::time::Duration,
    pub image_cleanup_interval: std::time::Duration,
    pub image_cleanup_per_cycle: usize,
    /// Serve the task metadata endpoint v4 (and give containers its URI).
    pub task_metadata: bool,
    pub task_metadata_port: u16,
    pub task_host_ip: Option<std::net::IpAddr>,
    /// How often running tasks' usage goes to the scheduler (1 s–60 s).
    pub stats_interval: std::time::Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            containerd_namespace: "berth".to_owned(),
            stop_timeout: std::time::Duration::from_secs(30),
            task_cleanup_wait: std::time::Duration::from_secs(3 * 3600),
            image_pull_behavior: PullPolicy::Default,
            docker_config: None,
            insecure_registries: vec![],
            log_max_size: 10 << 20,
            log_max_files: 5,
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: "berth0".to_owned(),
            bridge_subnet: None,
            cgroup_parent: "berth".to_owned(),
            image_cleanup_min_age: std::time::Duration::from_secs(3600),
            image_cleanup_interval: std::time::Duration::from_secs(1800),
            image_cleanup_per_cycle: 5,
            task_metadata: true,
            task_metadata_port: DEFAULT_TASK_METADATA_PORT,
            task_host_ip: None,
            stats_interval: DEFAULT_STATS_INTERVAL,
        }
    }
}

/// The default `stats_interval`: six samples per minute, so each minute's
/// service average has several readings per task.
pub const DEFAULT_STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The validated configuration the agent runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The scheduler's endpoint, e.g. `https://scheduler:7400`.
    pub scheduler: String,
    pub cluster: String,
    pub state_dir: PathBuf,
    pub reserved_memory_mib: u64,
    /// Replaces the measured `1024 × online CPUs` when set.
    pub cpu_units: Option<u64>,
    pub port_range: PortRange,
    pub reserved_tcp_ports: BTreeSet<u16>,
    pub reserved_udp_ports: BTreeSet<u16>,
    pub availability_zone: Option<String>,
    pub instance_type: Option<String>,
    pub custom_attributes: BTreeMap<String, String>,
    /// Replaces the system's host name when set.
    pub hostname: Option<String>,
    /// The IPv4 address load balancers reach this host's task ports on,
    /// sent in Hello; `None`: the scheduler uses the connection's peer
    /// address.
    pub advertise_address: Option<std::net::Ipv4Addr>,
    /// Where `GET /metrics` listens; `None`: off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub log_format: LogFormat,
    pub runtime: RuntimeConfig,
}

impl Config {
    /// A configuration with every default, for the given scheduler and cluster.
    pub fn new(scheduler: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            scheduler: scheduler.into(),
            cluster: cluster.into(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            reserved_memory_mib: DEFAULT_RESERVED_MEMORY_MIB,
            cpu_units: None,
            port_range: DEFAULT_PORT_RANGE,
            reserved_tcp_ports: DEFAULT_RESERVED_PORTS.into_iter().collect(),
            reserved_udp_ports: BTreeSet::new(),
            availability_zone: None,
            instance_type: None,
            custom_attributes: BTreeMap::new(),
            hostname: None,
            advertise_address: None,
            metrics_listen: Some(DEFAULT_METRICS_LISTEN),
            log_format: LogFormat::Text,
            runtime: RuntimeConfig::default(),
        }
    }

    /// Where containers' json-file logs live.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// Where the persisted identity lives.
    pub fn identity_path(&self) -> PathBuf {
        self.state_dir.join(IDENTITY_FILE)
    }
}

/// An inclusive range of host ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| "expected START-END, e.g. 20000-32767".to_owned())?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{:?} is not a port number (1-65535)", p.trim()))
        };
        let range = PortRange {
            start: port(a)?,
            end: port(b)?,
        };
        if range.start == 0 {
            return Err("port 0 is not a usable host port".to_owned());
        }
        if range.start > range.end {
            return Err(format!("start {} is above end {}", range.start, range.end));
        }
        Ok(range)
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines (journald adds its own timestamps).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is neither \"text\" nor \"json\"")),
        }
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Settings given as command-line flags; they win over every other source.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub scheduler: Option<String>,
    pub cluster: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub advertise_address: Option<String>,
    pub metrics_listen: Option<String>,
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// Why the configuration could not be loaded. Every variant means exit code 64.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{setting} is not set: give --{flag}, {env} or `{setting} = ...` in the config file")]
    Missing {
        setting: &'static str,
        flag: &'static str,
        env: &'static str,
    },
    #[error("invalid {setting} {value:?} (from {origin}): {reason}")]
    Invalid {
        setting: &'static str,
        value: String,
        origin: Origin,
        reason: String,
    },
}

/// The configuration file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    scheduler: Option<String>,
    cluster: Option<String>,
    state_dir: Option<PathBuf>,
    reserved_memory_mib: Option<u64>,
    cpu_units: Option<u64>,
    port_range: Option<PortRange>,
    reserved_ports: Option<Vec<u16>>,
    reserved_udp_ports: Option<Vec<u16>>,
    availability_zone: Option<String>,
    instance_type: Option<String>,
    custom_attributes: Option<BTreeMap<String, String>>,
    hostname: Option<String>,
    advertise_address: Option<String>,
    metrics_listen: Option<String>,
    log_format: Option<LogFormat>,
    containerd_socket: Option<PathBuf>,
    containerd_namespace: Option<String>,
    stop_timeout: Option<HumanDuration>,
    task_cleanup_wait: Option<HumanDuration>,
    image_pull_behavior: Option<PullPolicy>,
    docker_config: Option<PathBuf>,
    insecure_registries: Option<Vec<String>>,
    log_max_size: Option<ByteSize>,
    log_max_files: Option<u32>,
    cni_bin_dirs: Option<Vec<PathBuf>>,
    bridge: Option<String>,
    bridge_subnet: Option<String>,
    cgroup_parent: Option<String>,
    image_cleanup_min_age: Option<HumanDuration>,
    image_cleanup_interval: Option<HumanDuration>,
    image_cleanup_per_cycle: Option<usize>,
    stats_interval: Option<HumanDuration>,
    task_metadata: Option<bool>,
    task_metadata_port: Option<u16>,
    task_host_ip: Option<std::net::IpAddr>,
}

/// Loads the configuration: reads the file named by `flags.config`, else by
/// `BERTH_CONFIG`, else [`DEFAULT_CONFIG_PATH`] if it exists, then layers
/// `env` and `flags` over it and validates the result.
pub fn load(flags: &Flags, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let explicit = flags
        .config
        .clone()
        .or_else(|| env_value(env, env::CONFIG).map(PathBuf::from));
    let (path, required) = match explicit {
        Some(p) => (p, true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    from_sources(text.as_deref().map(|t| (path.as_path(), t)), env, flags)
}

/// Layers the sources (flags over `env` over the file's text over defaults)
/// and validates the result. Pure: reads neither files nor the environment.
pub fn from_sources(
    file: Option<(&Path, &str)>,
    env: &HashMap<String, String>,
    flags: &Flags,
) -> Result<Config, ConfigError> {
    let (file_cfg, file_origin) = match file {
        Some((path, text)) => {
            let cfg: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                source: Box::new(e),
            })?;
            (cfg, Origin::File(path.to_owned()))
        }
        None => (FileConfig::default(), Origin::Default),
    };
    let layers = Layers {
        env,
        file_origin: &file_origin,
    };

    let (scheduler, scheduler_origin) = layers
        .string(
            flags.scheduler.clone(),
            "--scheduler",
            env::SCHEDULER,
            file_cfg.scheduler,
        )
        .ok_or(ConfigError::Missing {
            setting: "scheduler",
            flag: "scheduler",
            env: env::SCHEDULER,
        })?;
    validate_scheduler(&scheduler).map_err(|reason| ConfigError::Invalid {
        setting: "scheduler",
        value: scheduler.clone(),
        origin: scheduler_origin,
        reason,
    })?;

    let (cluster, origin) = layers
        .string(
            flags.cluster.clone(),
            "--cluster",
            env::CLUSTER,
            file_cfg.cluster,
        )
        .unwrap_or_else(|| (DEFAULT_CLUSTER.to_owned(), Origin::Default));
    validate_cluster(&cluster).map_err(|reason| invalid("cluster", &cluster, &origin, reason))?;

    let (state_dir, origin) = match (&flags.state_dir, env_value(env, env::STATE_DIR)) {
        (Some(dir), _) => (dir.clone(), Origin::Flag("--state-dir")),
        (None, Some(dir)) => (PathBuf::from(dir), Origin::Env(env::STATE_DIR)),
        (None, None) => match file_cfg.state_dir {
            Some(dir) => (dir, file_origin.clone()),
            None => (PathBuf::from(DEFAULT_STATE_DIR), Origin::Default),
        },
    };
    if !state_dir.is_absolute() {
        return Err(invalid(
            "state_dir",
            &state_dir.display().to_string(),
            &origin,
            "must be an absolute path".to_owned(),
        ));
    }

    let reserved_memory_mib = layers
        .parsed(
            env::RESERVED_MEMORY_MIB,
            "reserved_memory_mib",
            file_cfg.reserved_memory_mib,
        )?
        .map_or(DEFAULT_RESERVED_MEMORY_MIB, |(v, _)| v);

    let cpu_units = match layers.parsed::<u64>(env::CPU_UNITS, "cpu_units", file_cfg.cpu_units)? {
        Some((0, origin)) => {
            return Err(invalid(
                "cpu_units",
                "0",
                &origin,
                "must be at least 1".to_owned(),
            ))
        }
        other => other.map(|(v, _)| v),
    };

    let port_range = layers
        .parsed(env::PORT_RANGE, "port_range", file_cfg.port_range)?
        .map_or(DEFAULT_PORT_RANGE, |(v, _)| v);

    let reserved_tcp_ports = layers
        .ports(
            env::RESERVED_PORTS,
            "reserved_ports",
            file_cfg.reserved_ports,
        )?
        .unwrap_or_else(|| DEFAULT_RESERVED_PORTS.into_iter().collect());
    let reserved_udp_ports = layers
        .ports(
            env::RESERVED_UDP_PORTS,
            "reserved_udp_ports",
            file_cfg.reserved_udp_ports,
        )?
        .unwrap_or_default();

    let availability_zone =
        layers.string(None, "", env::AVAILABILITY_ZONE, file_cfg.availability_zone);
    if let Some((v, origin)) = &availability_zone {
        validate_attribute_value(v)
            .map_err(|reason| invalid("availability_zone", v, origin, reason))?;
    }
    let instance_type = layers.string(None, "", env::INSTANCE_TYPE, file_cfg.instance_type);
    if let Some((v, origin)) = &instance_type {
        validate_attribute_value(v)
            .map_err(|reason| invalid("instance_type", v, origin, reason))?;
    }

    let custom_attributes = match env_value(env, env::CUSTOM_ATTRIBUTES) {
        Some(raw) => (
            parse_attribute_list(raw).map_err(|reason| {
                invalid(
                    "custom_attributes",
                    raw,
                    &Origin::Env(env::CUSTOM_ATTRIBUTES),
                    reason,
                )
            })?,
            Origin::Env(env::CUSTOM_ATTRIBUTES),
        ),
        None => (
            file_cfg.custom_attributes.unwrap_or_default(),
            file_origin.clone(),
        ),
    };
    for (name, value) in &custom_attributes.0 {
        validate_custom_attribute(name, value).map_err(|reason| {
            invalid(
                "custom_attributes",
                &format!("{name}={value}"),
                &custom_attributes.1,
                reason,
            )
        })?;
    }

    let hostname = layers.string(None, "", env::HOSTNAME, file_cfg.hostname);
    if let Some((h, origin)) = &hostname {
        validate_hostname(h).map_err(|reason| invalid("hostname", h, origin, reason))?;
    }

    let advertise_address = layers
        .string(
            flags.advertise_address.clone(),
            "--advertise-address",
            env::ADVERTISE_ADDRESS,
            file_cfg.advertise_address,
        )
        .map(|(v, origin)| {
            parse_advertise_address(&v)
                .map_err(|reason| invalid("advertise_address", &v, &origin, reason))
        })
        .transpose()?;

    let metrics_listen = match layers.string(
        flags.metrics_listen.clone(),
        "--metrics-listen",
        env::METRICS_LISTEN,
        file_cfg.metrics_listen,
    ) {
        None => Some(DEFAULT_METRICS_LISTEN),
        Some((v, _)) if v.trim().eq_ignore_ascii_case("off") => None,
        Some((v, origin)) => Some(v.trim().parse::<std::net::SocketAddr>().map_err(|e| {
            invalid(
                "metrics_listen",
                &v,
                &origin,
                format!("not an address:port or \"off\" ({e})"),
            )
        })?),
    };

    let log_format = layers
        .parsed(env::LOG_FORMAT, "log_format", file_cfg.log_format)?
        .map_or(LogFormat::Text, |(v, _)| v);

    let d = RuntimeConfig::default();
    let list = |env_name: &'static str, file: Option<Vec<String>>| -> Option<Vec<String>> {
        match env_value(env, env_name) {
            Some(raw) => Some(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            None => file,
        }
    };
    let name_setting = |setting: &'static str, v: Option<(String, Origin)>, default: String| match v
    {
        Some((v, origin)) => {
            if v.len() > 15 && setting == "bridge" {
                return Err(invalid(
                    setting,
                    &v,
                    &origin,
                    "a Linux interface name has at most 15 characters".to_owned(),
                ));
            }
            if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(invalid(
                    setting,
                    &v,
                    &origin,
                    "use letters, digits, '-', '_' and '.'".to_owned(),
                ));
            }
            Ok(v)
        }
        None => Ok(default),
    };
    let containerd_socket = match env_value(env, env::CONTAINERD_SOCKET) {
        Some(p) => PathBuf::from(p),
        None => file_cfg.containerd_socket.unwrap_or(d.containerd_socket),
    };
    let containerd_namespace = name_setting(
        "containerd_namespace",
        layers.string(
            None,
            "",
            env::CONTAINERD_NAMESPACE,
            file_cfg.containerd_namespace,
        ),
        d.containerd_namespace,
    )?;
    let duration = |env_name, setting, file, default: std::time::Duration| {
        layers
            .parsed::<HumanDuration>(env_name, setting, file)
            .map(|v| v.map_or(default, |(v, _)| v.0))
    };
    let stop_timeout = duration(
        env::STOP_TIMEOUT,
        "stop_timeout",
        file_cfg.stop_timeout,
        d.stop_timeout,
    )?;
    let task_cleanup_wait = duration(
        env::TASK_CLEANUP_WAIT,
        "task_cleanup_wait",
        file_cfg.task_cleanup_wait,
        d.task_cleanup_wait,
    )?;
    let image_cleanup_min_age = duration(
        env::IMAGE_CLEANUP_MIN_AGE,
        "image_cleanup_min_age",
        file_cfg.image_cleanup_min_age,
        d.image_cleanup_min_age,
    )?;
    let image_cleanup_interval = duration(
        env::IMAGE_CLEANUP_INTERVAL,
        "image_cleanup_interval",
        file_cfg.image_cleanup_interval,
        d.image_cleanup_interval,
    )?;
    let stats_interval = match layers.parsed::<HumanDuration>(
        env::STATS_INTERVAL,
        "stats_interval",
        file_cfg.stats_interval,
    )? {
        None => d.stats_interval,
        Some((v, origin)) => {
            let range = std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(60);
            if !range.contains(&v.0) {
                return Err(invalid(
                    "stats_interval",
                    &format!("{:?}", v.0),
                    &origin,
                    "must be between 1s and 60s (service auto scaling needs a reading a minute)"
                        .to_owned(),
                ));
            }
            v.0
        }
    };
    let image_pull_behavior = layers
        .parsed(
            env::IMAGE_PULL_BEHAVIOR,
            "image_pull_behavior",
            file_cfg.image_pull_behavior,
        )?
        .map_or(d.image_pull_behavior, |(v, _)| v);
    let docker_config = env_value(env, env::DOCKER_CONFIG)
        .map(PathBuf::from)
        .or(file_cfg.docker_config);
    let insecure_registries =
        list(env::INSECURE_REGISTRIES, file_cfg.insecure_registries).unwrap_or_default();
    let log_max_size = layers
        .parsed(env::LOG_MAX_SIZE, "log_max_size", file_cfg.log_max_size)?
        .map_or(d.log_max_size, |(v, _)| v.0);
    let log_max_files =
        match layers.parsed::<u32>(env::LOG_MAX_FILES, "log_max_files", file_cfg.log_max_files)? {
            Some((0, origin)) => {
                return Err(invalid(
                    "log_max_files",
                    "0",
                    &origin,
                    "must be at least 1".to_owned(),
                ))
            }
            other => other.map_or(d.log_max_files, |(v, _)| v),
        };
    let cni_bin_dirs = list(
        env::CNI_BIN_DIRS,
        file_cfg
            .cni_bin_dirs
            .map(|v| v.into_iter().map(|p| p.display().to_string()).collect()),
    )
    .map(|v| v.into_iter().map(PathBuf::from).collect())
    .unwrap_or(d.cni_bin_dirs);
    let bridge = name_setting(
        "bridge",
        layers.string(None, "", env::BRIDGE, file_cfg.bridge),
        d.bridge,
    )?;
    let bridge_subnet = layers
        .string(None, "", env::BRIDGE_SUBNET, file_cfg.bridge_subnet)
        .map(|(v, origin)| {
            validate_cidr(&v)
                .map(|()| v.clone())
                .map_err(|reason| invalid("bridge_subnet", &v, &origin, reason))
        })
        .transpose()?;
    let cgroup_parent = name_setting(
        "cgroup_parent",
        layers.string(None, "", env::CGROUP_PARENT, file_cfg.cgroup_parent),
        d.cgroup_parent,
    )?;
    let image_cleanup_per_cycle = layers
        .parsed(
            env::IMAGE_CLEANUP_PER_CYCLE,
            "image_cleanup_per_cycle",
            file_cfg.image_cleanup_per_cycle,
        )?
        .map_or(d.image_cleanup_per_cycle, |(v, _)| v);
    let task_metadata = layers
        .parsed(env::TASK_METADATA, "task_metadata", file_cfg.task_metadata)?
        .map_or(d.task_metadata, |(v, _)| v);
    let task_metadata_port = match layers.parsed::<u16>(
        env::TASK_METADATA_PORT,
        "task_metadata_port",
        file_cfg.task_metadata_port,
    )? {
        Some((0, origin)) => {
            return Err(invalid(
                "task_metadata_port",
                "0",
                &origin,
                "must be a port number (1-65535)".to_owned(),
            ))
        }
        other => other.map_or(d.task_metadata_port, |(v, _)| v),
    };
    let task_host_ip = layers
        .parsed(env::TASK_HOST_IP, "task_host_ip", file_cfg.task_host_ip)?
        .map(|(v, _)| v);
    let runtime = RuntimeConfig {
        containerd_socket,
        containerd_namespace,
        stop_timeout,
        task_cleanup_wait,
        image_pull_behavior,
        docker_config,
        insecure_registries,
        log_max_size,
        log_max_files,
        cni_bin_dirs,
        bridge,
        bridge_subnet,
        cgroup_parent,
        image_cleanup_min_age,
        image_cleanup_interval,
        image_cleanup_per_cycle,
        task_metadata,
        task_metadata_port,
        task_host_ip,
        stats_interval,
    };

    Ok(Config {
        scheduler,
        cluster,
        state_dir,
        reserved_memory_mib,
        cpu_units,
        port_range,
        reserved_tcp_ports,
        reserved_udp_ports,
        availability_zone: availability_zone.map(|(v, _)| v),
        instance_type: instance_type.map(|(v, _)| v),
        custom_attributes: custom_attributes.0,
        hostname: hostname.map(|(v, _)| v),
        advertise_address,
        metrics_listen,
        log_format,
        runtime,
    })
}

/// A unicast IPv4 address: not unspecified, multicast or broadcast (no load
/// balancer could send to it). Loopback is allowed: a one-host cluster's
/// load balancer may run beside the agent.
fn parse_advertise_address(s: &str) -> Result<std::net::Ipv4Addr, String> {
    let ip: std::net::Ipv4Addr = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address like 192.0.2.10"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!(
            "{ip} is not an address other hosts can reach this host on"
        ));
    }
    Ok(ip)
}

/// `a.b.c.d/n` with n in 8..=28 (room for tasks, not the whole space).
fn validate_cidr(s: &str) -> Result<(), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| "expected a CIDR like 10.213.0.0/16".to_owned())?;
    ip.parse::<std::net::Ipv4Addr>()
        .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{len:?} is not a prefix length"))?;
    if !(8..=28).contains(&len) {
        return Err(format!("prefix length {len} is not within 8–28"));
    }
    Ok(())
}

/// The environment and the file, with the precedence rules between them.
struct Layers<'a> {
    env: &'a HashMap<String, String>,
    file_origin: &'a Origin,
}

impl Layers<'_> {
    /// A string setting: flag, else env, else file. Empty values count as unset.
    fn string(
        &self,
        flag: Option<String>,
        flag_name: &'static str,
        env_name: &'static str,
        file: Option<String>,
    ) -> Option<(String, Origin)> {
        if let Some(v) = flag.filter(|v| !v.is_empty()) {
            return Some((v, Origin::Flag(flag_name)));
        }
        if let Some(v) = env_value(self.env, env_name) {
            return Some((v.to_owned(), Origin::Env(env_name)));
        }
        file.filter(|v| !v.is_empty())
            .map(|v| (v, self.file_origin.clone()))
    }

    /// A setting parsed from its env string with `FromStr`, else the file's
    /// already-typed value.
    fn parsed<T>(
        &self,
        env_name: &'static str,
        setting: &'static str,
        file: Option<T>,
    ) -> Result<Option<(T, Origin)>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match env_value(self.env, env_name) {
            Some(raw) => raw
                .parse::<T>()
                .map(|v| Some((v, Origin::Env(env_name))))
                .map_err(|e| invalid(setting, raw, &Origin::Env(env_name), e.to_string())),
            None => Ok(file.map(|v| (v, self.file_origin.clone()))),
        }
    }

    /// A port list: comma-separated in the environment, an array in the file.
    fn ports(
        &self,
        env_name: &'static str,
        setting: &'static str,
        file: Option<Vec<u16>>,
    ) -> Result<Option<BTreeSet<u16>>, ConfigError> {
        let (ports, origin) = match env_value(self.env, env_name) {
            Some(raw) => {
                let origin = Origin::Env(env_name);
                let ports = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        p.parse::<u16>().map_err(|_| {
                            invalid(setting, raw, &origin, format!("{p:?} is not a port number"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (ports, origin)
            }
            None => match file {
                Some(ports) => (ports, self.file_origin.clone()),
                None => return Ok(None),
            },
        };
        if ports.contains(&0) {
            let shown = ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",");
            return Err(invalid(
                setting,
                &shown,
                &origin,
                "port 0 is not a host port".to_owned(),
            ));
        }
        Ok(Some(ports.into_iter().collect()))
    }
}

fn env_value<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn invalid(setting: &'static str, value: &str, origin: &Origin, reason: String) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_owned(),
        origin: origin.clone(),
        reason,
    }
}

fn validate_scheduler(url: &str) -> Result<(), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected e.g. https://scheduler:7400"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            return Err(
                "the scheduler speaks mutual TLS only; use https://, e.g. https://scheduler:7400"
                    .into(),
            )
        }
        _ => return Err("expected an https:// URL, e.g. https://scheduler:7400".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("the URL must not have a path or query".into());
    }
    Ok(())
}

/// ECS cluster names ([`check_cluster_name`]).
fn validate_cluster(name: &str) -> Result<(), String> {
    check_cluster_name(name).map_err(|e| e.to_string())
}

fn validate_hostname(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err("longer than 255 characters".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    Ok(())
}

/// `name=value,name2=value2` (values may be empty: presence-only attributes).
fn parse_attribute_list(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, value) = item.split_once('=').unwrap_or((item, ""));
        if out
            .insert(name.trim().to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(format!("attribute {:?} is given twice", name.trim()));
        }
    }
    Ok(out)
}

/// A custom attribute by [`berth_proto::names`]' rules, which the scheduler
/// applies too (an empty value is a presence-only attribute); names starting
/// with `ecs.` are the agent's own.
fn validate_custom_attribute(name: &str, value: &str) -> Result<(), String> {
    check_attribute_name(name).map_err(|e| format!("attribute name {e}"))?;
    if name.to_ascii_lowercase().starts_with("ecs.") {
        return Err(format!(
            "attribute name {name:?}: the \"ecs.\" prefix is reserved for the agent's own attributes"
        ));
    }
    validate_attribute_value(value).map_err(|e| format!("value of {name:?}: {e}"))
}

/// ECS attribute values ([`check_attribute_value`]).
fn validate_attribute_value(value: &str) -> Result<(), String> {
    check_attribute_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_with_ecs_names() {
        for (s, p) in [
            ("default", PullPolicy::Default),
            ("always", PullPolicy::Always),
            ("once", PullPolicy::Once),
            ("prefer-cached", PullPolicy::PreferCached),
        ] {
            assert_eq!(s.parse::<PullPolicy>(), Ok(p));
            assert_eq!(p.to_string(), s);
        }
        let err = "sometimes".parse::<PullPolicy>().unwrap_err();
        assert!(err.to_string().contains("\"sometimes\""), "{err}");
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> Option<(&'static Path, &str)> {
        Some((Path::new("/etc/berth/agent.toml"), text))
    }

    fn flags() -> Flags {
        Flags::default()
    }

    const FULL_FILE: &str = r#"
scheduler = "https://file-scheduler:7070"
cluster = "file-cluster"
state_dir = "/srv/berth"
reserved_memory_mib = 512
cpu_units = 4096
port_range = "21000-22000"
reserved_ports = [22, 2375, 22]
reserved_udp_ports = [53]
availability_zone = "rack-1"
instance_type = "m5.large"
hostname = "host-a"
log_format = "json"

[custom_attributes]
"stack" = "prod"
"gpu" = ""
"#;

    #[test]
    fn defaults_apply_with_only_a_scheduler() {
        let cfg = from_sources(None, &env(&[(env::SCHEDULER, "https://s:7070")]), &flags())
            .expect("valid");
        assert_eq!(cfg, Config::new("https://s:7070", "default"));
        assert_eq!(
            cfg.reserved_tcp_ports.iter().copied().collect::<Vec<_>>(),
            vec![22, 51679]
        );
        assert_eq!(
            cfg.identity_path(),
            Path::new("/var/lib/berth/agent/identity.json")
        );
    }

    #[test]
    fn file_values_are_read() {
        let cfg = from_sources(file(FULL_FILE), &env(&[]), &flags()).expect("valid");
        assert_eq!(cfg.scheduler, "https://file-scheduler:7070");
        assert_eq!(cfg.cluster, "file-cluster");
        assert_eq!(cfg.state_dir, Path::new("/srv/berth"));
        assert_eq!(cfg.reserved_memory_mib, 512);
        assert_eq!(cfg.cpu_units, Some(4096));
        assert_eq!(
            cfg.port_range,
            PortRange {
                start: 21000,
                end: 22000
            }
        );
        assert_eq!(
            cfg.reserved_tcp_ports.iter().copied().collect::<Vec<_>>(),
            vec![22, 2375]
        );
        assert_eq!(
            cfg.reserved_udp_ports.iter().copied().collect::<Vec<_>>(),
            vec![53]
        );
        assert_eq!(cfg.availability_zone.as_deref(), Some("rack-1"));
        assert_eq!(cfg.instance_type.as_deref(), Some("m5.large"));
        assert_eq!(cfg.hostname.as_deref(), Some("host-a"));
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(
            cfg.custom_attributes.get("stack").map(String::as_str),
            Some("prod")
        );
        assert_eq!(
            cfg.custom_attributes.get("gpu").map(String::as_str),
            Some("")
        );
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let e = env(&[
            (env::SCHEDULER, "https://env-scheduler:7070"),
            (env::CLUSTER, "env-cluster"),
            (env::STATE_DIR, "/env/state"),
            (env::RESERVED_MEMORY_MIB, "1024"),
            (env::PORT_RANGE, "23000-24000"),
            (env::RESERVED_PORTS, "22, 2375"),
            (env::RESERVED_UDP_PORTS, "123"),
            (env::AVAILABILITY_ZONE, "rack-2"),
            (env::INSTANCE_TYPE, "bare-metal"),
            (env::CUSTOM_ATTRIBUTES, "a=1,b=two words"),
            (env::HOSTNAME, "host-b"),
            (env::LOG_FORMAT, "text"),
            (env::CPU_UNITS, "2048"),
        ]);
        let cfg = from_sources(file(FULL_FILE), &e, &flags()).expect("valid");
        assert_eq!(cfg.scheduler, "https://env-scheduler:7070");
        assert_eq!(cfg.cluster, "env-cluster");
        assert_eq!(cfg.state_dir, Path::new("/env/state"));
        assert_eq!(cfg.reserved_memory_mib, 1024);
        assert_eq!(cfg.cpu_units, Some(2048));
        assert_eq!(cfg.port_range.to_string(), "23000-24000");
        assert_eq!(
            cfg.reserved_tcp_ports.iter().copied().collect::<Vec<_>>(),
            vec![22, 2375]
        );
        assert_eq!(
            cfg.reserved_udp_ports.iter().copied().collect::<Vec<_>>(),
            vec![123]
        );
        assert_eq!(cfg.availability_zone.as_deref(), Some("rack-2"));
        assert_eq!(cfg.instance_type.as_deref(), Some("bare-metal"));
        assert_eq!(cfg.hostname.as_deref(), Some("host-b"));
        assert_eq!(cfg.log_format, LogFormat::Text);
        assert_eq!(
            cfg.custom_attributes,
            BTreeMap::from([
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "two words".to_owned())
            ])
        );

        let f = Flags {
            config: None,
            scheduler: Some("https://flag-scheduler:7070".into()),
            cluster: Some("flag-cluster".into()),
            state_dir: Some(PathBuf::from("/flag/state")),
            advertise_address: Some("198.51.100.9".into()),
            metrics_listen: None,
        };
        let cfg = from_sources(file(FULL_FILE), &e, &f).expect("valid");
        assert_eq!(cfg.scheduler, "https://flag-scheduler:7070");
        assert_eq!(cfg.cluster, "flag-cluster");
        assert_eq!(cfg.state_dir, Path::new("/flag/state"));
        assert_eq!(
            cfg.advertise_address,
            Some(std::net::Ipv4Addr::new(198, 51, 100, 9))
        );
    }

    #[test]
    fn empty_env_values_count_as_unset() {
        let e = env(&[(env::CLUSTER, ""), (env::RESERVED_PORTS, "")]);
        let cfg = from_sources(file(FULL_FILE), &e, &flags()).expect("valid");
        assert_eq!(cfg.cluster, "file-cluster");
        assert_eq!(cfg.reserved_tcp_ports.len(), 2);
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let err = from_sources(
            file("scheduler = \"https://s:1\"\ncontainerd_sockett = \"/run/x\"\n"),
            &env(&[]),
            &flags(),
        )
        .expect_err("unknown key");
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
        assert!(msg.contains("containerd_sockett"), "{msg}");
        assert!(msg.contains("/etc/berth/agent.toml"), "{msg}");
    }

    #[test]
    fn missing_scheduler_names_all_ways_to_set_it() {
        let err = from_sources(None, &env(&[]), &flags()).expect_err("missing");
        let msg = err.to_string();
        assert!(
            msg.contains("--scheduler") && msg.contains("BERTH_SCHEDULER"),
            "{msg}"
        );
    }

    #[test]
    fn bad_port_ranges_are_rejected_naming_the_setting() {
        for (raw, needle) in [
            ("32767-20000", "start 32767 is above end 20000"),
            ("20000", "START-END"),
            ("0-100", "port 0"),
            ("20000-70000", "\"70000\" is not a port number"),
        ] {
            let e = env(&[(env::SCHEDULER, "https://s:1"), (env::PORT_RANGE, raw)]);
            let msg = from_sources(None, &e, &flags()).expect_err(raw).to_string();
            assert!(msg.contains("port_range"), "{msg}");
            assert!(msg.contains("BERTH_PORT_RANGE"), "{msg}");
            assert!(msg.contains(needle), "{raw}: {msg}");
        }
        let msg = from_sources(
            file("scheduler = \"https://s:1\"\nport_range = \"9-3\"\n"),
            &env(&[]),
            &flags(),
        )
        .expect_err("bad file range")
        .to_string();
        assert!(msg.contains("port_range") && msg.contains("above"), "{msg}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let base =
            |k: &'static str, v: &'static str| env(&[(env::SCHEDULER, "https://s:7070"), (k, v)]);
        let cases = [
            (base(env::SCHEDULER, "http://s:7070"), "scheduler"),
            (base(env::SCHEDULER, "s:7070"), "scheduler"),
            (base(env::SCHEDULER, "https://s:7070/api"), "scheduler"),
            (base(env::CLUSTER, "no spaces"), "cluster"),
            (base(env::STATE_DIR, "relative/dir"), "state_dir"),
            (base(env::RESERVED_MEMORY_MIB, "-1"), "reserved_memory_mib"),
            (base(env::CPU_UNITS, "0"), "cpu_units"),
            (base(env::RESERVED_PORTS, "22,0"), "reserved_ports"),
            (base(env::RESERVED_PORTS, "22,ssh"), "reserved_ports"),
            (base(env::RESERVED_UDP_PORTS, "65536"), "reserved_udp_ports"),
            (
                base(env::CUSTOM_ATTRIBUTES, "ecs.os-type=windows"),
                "custom_attributes",
            ),
            (base(env::CUSTOM_ATTRIBUTES, "a=1,a=2"), "custom_attributes"),
            (
                base(env::CUSTOM_ATTRIBUTES, "bad name=1"),
                "custom_attributes",
            ),
            (base(env::AVAILABILITY_ZONE, "rack#1"), "availability_zone"),
            (base(env::HOSTNAME, "two words"), "hostname"),
            (base(env::LOG_FORMAT, "yaml"), "log_format"),
        ];
        for (e, setting) in cases {
            let err = from_sources(None, &e, &flags()).expect_err(setting);
            match &err {
                ConfigError::Invalid {
                    setting: s, origin, ..
                } => {
                    assert_eq!(*s, setting, "{err}");
                    assert!(matches!(origin, Origin::Env(_)), "{err}");
                }
                other => panic!("{setting}: unexpected {other}"),
            }
        }
    }

    #[test]
    fn advertise_address_is_layered_and_validated() {
        let scheduler = (env::SCHEDULER, "https://s:7070");
        let cfg = from_sources(None, &env(&[scheduler]), &flags()).expect("valid");
        assert_eq!(cfg.advertise_address, None, "unset by default");

        let text = "scheduler = \"https://s:7070\"\nadvertise_address = \"192.0.2.10\"\n";
        let cfg = from_sources(file(text), &env(&[]), &flags()).expect("valid");
        assert_eq!(
            cfg.advertise_address,
            Some(std::net::Ipv4Addr::new(192, 0, 2, 10))
        );
        let e = env(&[(env::ADVERTISE_ADDRESS, "192.0.2.11")]);
        let cfg = from_sources(file(text), &e, &flags()).expect("valid");
        assert_eq!(
            cfg.advertise_address,
            Some(std::net::Ipv4Addr::new(192, 0, 2, 11)),
            "env beats file"
        );
        let f = Flags {
            advertise_address: Some("192.0.2.12".into()),
            ..Flags::default()
        };
        let cfg = from_sources(file(text), &e, &f).expect("valid");
        assert_eq!(
            cfg.advertise_address,
            Some(std::net::Ipv4Addr::new(192, 0, 2, 12)),
            "flag beats env"
        );

        for bad in [
            "host-a",
            "2001:db8::1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "10.0.0.300",
        ] {
            let e = env(&[scheduler, (env::ADVERTISE_ADDRESS, bad)]);
            let err = from_sources(None, &e, &flags()).expect_err(bad);
            match &err {
                ConfigError::Invalid {
                    setting, origin, ..
                } => {
                    assert_eq!(*setting, "advertise_address", "{err}");
                    assert_eq!(*origin, Origin::Env(env::ADVERTISE_ADDRESS), "{err}");
                }
                other => panic!("{bad}: unexpected {other}"),
            }
        }
        let err = from_sources(
            file("scheduler = \"https://s:7070\"\nadvertise_address = \"nope\"\n"),
            &env(&[]),
            &flags(),
        )
        .expect_err("bad file value")
        .to_string();
        assert!(
            err.contains("advertise_address") && err.contains("/etc/berth/agent.toml"),
            "{err}"
        );
    }

    #[test]
    fn load_reads_explicit_file_and_rejects_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "scheduler = \"https://s:7070\"\ncluster = \"c1\"\n").expect("write");
        let f = Flags {
            config: Some(path.clone()),
            ..Flags::default()
        };
        assert_eq!(load(&f, &env(&[])).expect("valid").cluster, "c1");

        let via_env = env(&[(env::CONFIG, path.to_str().expect("utf-8 path"))]);
        assert_eq!(
            load(&Flags::default(), &via_env).expect("valid").cluster,
            "c1"
        );

        let missing = Flags {
            config: Some(dir.path().join("nope.toml")),
            ..Flags::default()
        };
        let err = load(&missing, &env(&[])).expect_err("missing explicit file");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../agent.example.toml");
        let cfg = from_sources(file(text), &env(&[]), &flags()).expect("example parses");
        let defaults = Config::new("https://scheduler.example:7070", DEFAULT_CLUSTER);
        assert_eq!(cfg, defaults, "the example shows the defaults");
    }

    #[test]
    fn port_range_overlap() {
        let r = |start, end| PortRange { start, end };
        assert!(!DEFAULT_PORT_RANGE.overlaps(&r(32768, 60999)));
        assert!(r(30000, 40000).overlaps(&r(32768, 60999)));
        assert!(r(60999, 61000).overlaps(&r(32768, 60999)));
        assert!(r(32768, 32768).overlaps(&r(32768, 60999)));
        assert!(DEFAULT_PORT_RANGE.contains(20000) && DEFAULT_PORT_RANGE.contains(32767));
    }
}

#[cfg(test)]
mod runtime_settings_tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_with(file: &str, e: &[(&str, &str)]) -> Result<Config, ConfigError> {
        from_sources(
            Some((Path::new("/etc/berth/agent.toml"), file)),
            &env(e),
            &Flags {
                scheduler: Some("https://127.0.0.1:7400".into()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn runtime_defaults_follow_ecs() {
        let c = load_with("", &[]).unwrap();
        let r = &c.runtime;
        assert_eq!(r.stop_timeout, std::time::Duration::from_secs(30));
        assert_eq!(
            r.task_cleanup_wait,
            std::time::Duration::from_secs(3 * 3600)
        );
        assert_eq!(r.image_pull_behavior, PullPolicy::Default);
        assert_eq!(r.containerd_namespace, "berth");
        assert_eq!(r.bridge, "berth0");
        assert_eq!(c.log_dir(), PathBuf::from("/var/lib/berth/agent/logs"));
    }

    #[test]
    fn runtime_settings_from_file_and_env() {
        let file = r#"
            stop_timeout = "10s"
            task_cleanup_wait = "5m"
            image_pull_behavior = "prefer-cached"
            log_max_size = "1m"
            insecure_registries = ["127.0.0.1:5000"]
            bridge_subnet = "10.213.0.0/16"
        "#;
        let c = load_with(
            file,
            &[(env::STOP_TIMEOUT, "2s"), (env::LOG_MAX_FILES, "3")],
        )
        .unwrap();
        let r = &c.runtime;
        assert_eq!(
            r.stop_timeout,
            std::time::Duration::from_secs(2),
            "env beats file"
        );
        assert_eq!(r.task_cleanup_wait, std::time::Duration::from_secs(300));
        assert_eq!(r.image_pull_behavior, PullPolicy::PreferCached);
        assert_eq!(r.log_max_size, 1 << 20);
        assert_eq!(r.log_max_files, 3);
        assert_eq!(r.insecure_registries, ["127.0.0.1:5000"]);
        assert_eq!(r.bridge_subnet.as_deref(), Some("10.213.0.0/16"));
    }

    #[test]
    fn bad_runtime_settings_name_themselves() {
        let err = |file: &str, e: &[(&str, &str)]| load_with(file, e).unwrap_err().to_string();
        assert!(err("", &[(env::STOP_TIMEOUT, "soon")]).contains("invalid stop_timeout"));
        let e = err("stats_interval = \"2m\"", &[]);
        assert!(
            e.contains("invalid stats_interval") && e.contains("between 1s and 60s"),
            "{e}"
        );
        assert!(err("", &[(env::STATS_INTERVAL, "0s")]).contains("invalid stats_interval"));
        let ok = load_with("stats_interval = \"30s\"", &[]).unwrap();
        assert_eq!(
            ok.runtime.stats_interval,
            std::time::Duration::from_secs(30)
        );
        assert_eq!(
            load_with("", &[]).unwrap().runtime.stats_interval,
            DEFAULT_STATS_INTERVAL
        );
        assert!(err("image_pull_behavior = \"sometimes\"", &[]).contains("sometimes"));
        assert!(err("", &[(env::BRIDGE_SUBNET, "10.0.0.0/33")]).contains("invalid bridge_subnet"));
        assert!(err("", &[(env::BRIDGE, "a-very-long-bridge-name")]).contains("invalid bridge"));
        assert!(err("", &[(env::LOG_MAX_FILES, "0")]).contains("invalid log_max_files"));
        assert!(err("contianerd_socket = \"/x\"", &[]).contains("unknown field"));
        assert!(err("", &[(env::TASK_METADATA, "yes")]).contains("invalid task_metadata"));
        assert!(err("", &[(env::TASK_METADATA_PORT, "0")]).contains("invalid task_metadata_port"));
        assert!(err("", &[(env::TASK_HOST_IP, "host")]).contains("invalid task_host_ip"));
    }

    #[test]
    fn metrics_listen_defaults_to_loopback_and_can_be_off() {
        let c = load_with("", &[]).unwrap();
        assert_eq!(c.metrics_listen, Some(DEFAULT_METRICS_LISTEN));
        let c = load_with("metrics_listen = \"0.0.0.0:9100\"", &[]).unwrap();
        assert_eq!(
            c.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:9100")
        );
        let c = load_with(
            "metrics_listen = \"0.0.0.0:9100\"",
            &[(env::METRICS_LISTEN, "off")],
        )
        .unwrap();
        assert_eq!(c.metrics_listen, None, "env beats file");
        let err = load_with("", &[(env::METRICS_LISTEN, "everywhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid metrics_listen"), "{err}");
    }

    #[test]
    fn task_metadata_settings() {
        let c = load_with("", &[]).unwrap();
        assert!(c.runtime.task_metadata);
        assert_eq!(c.runtime.task_metadata_port, 51679);
        assert_eq!(c.runtime.task_host_ip, None);
        let c = load_with(
            "task_metadata_port = 8080\ntask_host_ip = \"192.0.2.7\"",
            &[(env::TASK_METADATA, "false")],
        )
        .unwrap();
        assert!(!c.runtime.task_metadata);
        assert_eq!(c.runtime.task_metadata_port, 8080);
        assert_eq!(c.runtime.task_host_ip, Some("192.0.2.7".parse().unwrap()));
    }
}
