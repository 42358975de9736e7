//! Scheduler configuration: `/etc/berth/scheduler.toml` (serde,
//! `deny_unknown_fields`), overridden by `BERTH_*` environment variables,
//! overridden by command-line flags. Parsing takes the environment as a map
//! so tests never touch the process environment; everything is validated
//! before any socket is bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_proto::arn::ArnPrefix;
use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/scheduler.toml";
pub const ENV_LISTEN: &str = "BERTH_LISTEN";
pub const ENV_DATA_DIR: &str = "BERTH_DATA_DIR";
pub const ENV_LOG_FORMAT: &str = "BERTH_LOG_FORMAT";
pub const ENV_ARN_PARTITION: &str = "BERTH_ARN_PARTITION";
pub const ENV_ARN_REGION: &str = "BERTH_ARN_REGION";
pub const ENV_ARN_ACCOUNT: &str = "BERTH_ARN_ACCOUNT";
pub const ENV_HEARTBEAT_INTERVAL: &str = "BERTH_HEARTBEAT_INTERVAL";
pub const ENV_HEARTBEAT_TTL: &str = "BERTH_HEARTBEAT_TTL";
/// How long an instance may stay disconnected beyond the heartbeat TTL
/// before its service tasks are replaced elsewhere.
pub const ENV_LOST_AFTER: &str = "BERTH_LOST_AFTER";
/// The first delay of the service start-failure throttle.
pub const ENV_SERVICE_THROTTLE_BASE: &str = "BERTH_SERVICE_THROTTLE_BASE";
/// How often the service controller re-evaluates every service even when
/// nothing woke it.
pub const ENV_SERVICE_RESYNC: &str = "BERTH_SERVICE_RESYNC";
/// `[webhooks]` max_attempts, backoff_base and backoff_max.
pub const ENV_WEBHOOKS_MAX_ATTEMPTS: &str = "BERTH_WEBHOOKS_MAX_ATTEMPTS";
pub const ENV_WEBHOOKS_BACKOFF_BASE: &str = "BERTH_WEBHOOKS_BACKOFF_BASE";
pub const ENV_WEBHOOKS_BACKOFF_MAX: &str = "BERTH_WEBHOOKS_BACKOFF_MAX";
/// `[autoscaling] period` (a duration such as `60s`).
pub const ENV_AUTOSCALING_PERIOD: &str = "BERTH_AUTOSCALING_PERIOD";
/// Comma-separated extra names of the serving certificate.
pub const ENV_TLS_SERVER_NAMES: &str = "BERTH_TLS_SERVER_NAMES";
pub const ENV_TLS_CA_CERT: &str = "BERTH_TLS_CA_CERT";
pub const ENV_TLS_CA_KEY: &str = "BERTH_TLS_CA_KEY";
pub const ENV_TLS_SERVER_CERT: &str = "BERTH_TLS_SERVER_CERT";
pub const ENV_TLS_SERVER_KEY: &str = "BERTH_TLS_SERVER_KEY";
/// Lifetime of agents' client certificates, e.g. "30d".
pub const ENV_TLS_CERT_VALIDITY: &str = "BERTH_TLS_CERT_VALIDITY";
/// The admin token to create at the first start (no token in the store
/// yet), `berth_<id>_<secret>`; unset: one is generated and printed once.
pub const ENV_BOOTSTRAP_TOKEN: &str = "BERTH_BOOTSTRAP_TOKEN";
pub const ENV_SECRETS_KEY_FILE: &str = "BERTH_SECRETS_KEY_FILE";
/// The ECS API's listen address, or `off`.
pub const ENV_ECS_API_LISTEN: &str = "BERTH_ECS_API_LISTEN";
/// The one SigV4 region the ECS API accepts (unset: any).
pub const ENV_ECS_API_REGION: &str = "BERTH_ECS_API_REGION";
/// The DNS server's listen address (service discovery), or `off`.
pub const ENV_DNS_LISTEN: &str = "BERTH_DNS_LISTEN";
/// The TTL of the DNS server's records and negative answers, e.g. "5s".
pub const ENV_DNS_TTL: &str = "BERTH_DNS_TTL";
/// The TTL of DNS records unless configured.
pub const DEFAULT_DNS_TTL: Duration = Duration::from_secs(5);
/// The longest TTL accepted (a day).
pub const MAX_DNS_TTL: Duration = Duration::from_secs(86_400);
/// The Prometheus endpoint's listen address (`GET /metrics`), or `off`.
pub const ENV_METRICS_LISTEN: &str = "BERTH_METRICS_LISTEN";
/// Where `/metrics` listens unless configured: loopback only.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);
/// The ECS API's port when its address is not configured: the gRPC
/// listener's address with this port.
pub const DEFAULT_ECS_API_PORT: u16 = 7443;
/// The secrets key's file name in the data dir, unless configured.
pub const SECRETS_KEY_FILE_NAME: &str = "secrets.key";

/// Client certificates last this long unless configured otherwise.
pub const DEFAULT_CLIENT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where the CA and the serving certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Extra names (DNS or IP) of the serving certificate, beyond
    /// `localhost`, `127.0.0.1`, `::1` and the host name.
    pub server_names: Vec<String>,
    /// An operator's CA (certificate and key PEM files) replacing the
    /// generated one.
    pub ca: Option<(PathBuf, PathBuf)>,
    /// An operator's serving certificate and key, replacing the issued one.
    pub server: Option<(PathBuf, PathBuf)>,
    /// How long agents' certificates last.
    pub client_validity: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            server_names: vec![],
            ca: None,
            server: None,
            client_validity: DEFAULT_CLIENT_VALIDITY,
        }
    }
}

/// Why the configuration is unusable. The scheduler exits with code 64.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The file's shape. Every field optional: defaults fill the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    arn: Option<FileArn>,
    agents: Option<FileAgents>,
    services: Option<FileServices>,
    tls: Option<FileTls>,
    secrets: Option<FileSecrets>,
    ecs_api: Option<FileEcsApi>,
    dns: Option<FileDns>,
    metrics: Option<FileMetrics>,
    events: Option<FileEvents>,
    webhooks: Option<FileWebhooks>,
    retention: Option<FileRetention>,
    schedules: Option<FileSchedules>,
    autoscaling: Option<FileAutoscaling>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAutoscaling {
    /// e.g. "60s": the metric period (one datapoint, one policy evaluation).
    period: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchedules {
    /// e.g. "1h": how late a fire missed while the scheduler was down may
    /// still run (the latest one only).
    catch_up_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDns {
    /// `address:port`, or `off` (the default).
    listen: Option<String>,
    /// e.g. "5s": records' and negative answers' TTL.
    ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    /// `address:port`, or `off`; default `127.0.0.1:9464`.
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhooks {
    /// How many deliveries may be under way at once, over all subscriptions.
    concurrency: Option<usize>,
    /// e.g. "5s": connecting (TCP and TLS).
    connect_timeout: Option<String>,
    /// e.g. "10s": one POST, from connecting to the answer's status.
    request_timeout: Option<String>,
    /// Attempts at one event before it is dead-lettered.
    max_attempts: Option<u32>,
    /// e.g. "1s": the first retry's delay; it doubles per attempt.
    backoff_base: Option<String>,
    /// e.g. "5m": the longest delay between two attempts.
    backoff_max: Option<String>,
    /// PEM file of extra CAs that receivers' certificates may chain to
    /// (read when the scheduler starts; an unusable file stops it there).
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvents {
    /// e.g. "24h": events older than this are pruned.
    max_age: Option<String>,
    /// At most this many events are kept (the newest).
    max_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEcsApi {
    /// `address:port`, or `off`; default the gRPC address with port 7443.
    listen: Option<String>,
    /// The SigV4 region clients must sign for; default any.
    region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    /// Extra DNS names or IP addresses of the serving certificate.
    server_names: Option<Vec<String>>,
    /// An operator's CA, replacing the one generated in `<data_dir>/tls`.
    ca_cert: Option<PathBuf>,
    ca_key: Option<PathBuf>,
    /// An operator's serving certificate, replacing the issued one.
    server_cert: Option<PathBuf>,
    server_key: Option<PathBuf>,
    /// Lifetime of agents' certificates, e.g. "30d".
    cert_validity: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecrets {
    /// The 32-byte key that encrypts secrets at rest; default
    /// `<data_dir>/secrets.key`, created on first start.
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileArn {
    partition: Option<String>,
    region: Option<String>,
    account: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAgents {
    /// e.g. "5s"
    heartbeat_interval: Option<String>,
    /// e.g. "20s"; the effective TTL also grows with fleet size.
    heartbeat_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServices {
    /// e.g. "60s": disconnected this long beyond the heartbeat TTL, an
    /// instance's service tasks are replaced elsewhere.
    lost_after: Option<String>,
    /// e.g. "5s": the first start-failure back-off; it doubles up to 15 min.
    throttle_base: Option<String>,
    /// e.g. "10s": the controller's periodic re-evaluation.
    resync: Option<String>,
}

/// Command-line overrides (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub ecs_api_listen: Option<String>,
    pub dns_listen: Option<String>,
    pub metrics_listen: Option<String>,
}

/// The DNS server's settings (`[dns]`, service discovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSettings {
    /// None: no DNS server (the default).
    pub listen: Option<SocketAddr>,
    /// The TTL of records and of negative answers (whole seconds).
    pub ttl: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            listen: None,
            ttl: DEFAULT_DNS_TTL,
        }
    }
}

/// The ECS API's settings (`[ecs_api]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsApiSettings {
    /// None: the ECS API is off.
    pub listen: Option<SocketAddr>,
    /// The one SigV4 region accepted; None accepts any.
    pub region: Option<String>,
}

/// The service controller's settings (`[services]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSettings {
    /// Disconnected this long beyond the heartbeat TTL, an instance is lost:
    /// its service tasks are replaced elsewhere.
    pub lost_after: Duration,
    /// The first start-failure back-off; it doubles up to 15 minutes.
    pub throttle_base: Duration,
    /// The periodic re-evaluation of every service.
    pub resync: Duration,
}

/// The event log's retention (`[events]`; `crate::events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSettings {
    /// Events older than this are pruned.
    pub max_age: Duration,
    /// At most this many events are kept, the newest.
    pub max_count: u64,
}

/// Webhook delivery (`[webhooks]`; `crate::webhooks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Deliveries under way at once, over all subscriptions.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts at one event before it is dead-lettered (1 = no retry).
    pub max_attempts: u32,
    /// The delay before the second attempt; it doubles per attempt, up to
    /// `backoff_max`, and each delay is drawn at random from its upper half.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Extra CAs (PEM) for receivers' certificates, besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            ca_file: None,
        }
    }
}

/// The scheduled tasks' loop (`[schedules]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleSettings {
    /// How often due fires are looked for.
    pub tick: Duration,
    /// How late a fire missed while the scheduler was down may still run.
    pub catch_up_window: Duration,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            catch_up_window: Duration::from_secs(3600),
        }
    }
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(24 * 3600),
            max_count: 100_000,
        }
    }
}

/// Datapoints given in code (tests): `(cluster, service, metric name,
/// period index)` → the value, where the metric name is `CPUUtilization` or
/// `MemoryUtilization`.
pub type MetricsFn = std::sync::Arc<dyn Fn(&str, &str, &str, i64) -> Option<f64> + Send + Sync>;

/// Service auto scaling (`[autoscaling]`).
#[derive(Clone)]
pub struct AutoscalingSettings {
    /// The metric period: one datapoint and one policy evaluation each.
    pub period: Duration,
    /// How often scheduled actions and bounds are checked.
    pub tick: Duration,
    /// Replaces the scheduler's own readings (tests).
    pub metrics_override: Option<MetricsFn>,
}

impl Default for AutoscalingSettings {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(60),
            tick: Duration::from_secs(1),
            metrics_override: None,
        }
    }
}

impl std::fmt::Debug for AutoscalingSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoscalingSettings")
            .field("period", &self.period)
            .field("tick", &self.tick)
            .field("metrics_override", &self.metrics_override.is_some())
            .finish()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub arn: ArnPrefix,
    pub heartbeat_interval: Duration,
    pub heartbeat_ttl: Duration,
    /// Service controller settings.
    pub services: ServiceSettings,
    pub tls: TlsSettings,
    /// From [`ENV_BOOTSTRAP_TOKEN`] only (a secret has no place in a file).
    pub bootstrap_token: Option<crate::auth::Token>,
    /// The key that encrypts secrets at rest (created when missing).
    pub secrets_key_file: PathBuf,
    pub ecs_api: EcsApiSettings,
    pub dns: DnsSettings,
    /// Where `GET /metrics` listens (`[metrics] listen`); None: off.
    pub metrics_listen: Option<SocketAddr>,
    /// The event log's retention (`[events]`).
    pub events: EventSettings,
    /// Webhook delivery (`[webhooks]`).
    pub webhooks: WebhookSettings,
    /// What is kept how long (`[retention]`).
    pub retention: RetentionSettings,
    /// The scheduled tasks' loop (`[schedules]`).
    pub schedules: ScheduleSettings,
    /// Service auto scaling (`[autoscaling]`); tests may plug a metrics source in.
    pub autoscaling: AutoscalingSettings,
}

impl Config {
    /// Defaults suitable for tests: loopback, ephemeral port, given data dir,
    /// short heartbeats.
    pub fn for_tests(data_dir: &Path) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            log_format: LogFormat::Text,
            arn: ArnPrefix::default(),
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_ttl: Duration::from_secs(1),
            services: ServiceSettings {
                lost_after: Duration::from_secs(2),
                throttle_base: Duration::from_millis(100),
                resync: Duration::from_millis(500),
            },
            tls: TlsSettings::default(),
            bootstrap_token: None,
            secrets_key_file: data_dir.join(SECRETS_KEY_FILE_NAME),
            ecs_api: EcsApiSettings {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                region: None,
            },
            dns: DnsSettings::default(),
            metrics_listen: None,
            events: EventSettings::default(),
            webhooks: WebhookSettings::default(),
            retention: RetentionSettings {
                interval: Duration::from_millis(200),
                ..Default::default()
            },
            schedules: ScheduleSettings {
                tick: Duration::from_millis(100),
                ..Default::default()
            },
            autoscaling: AutoscalingSettings {
                tick: Duration::from_millis(100),
                ..Default::default()
            },
        }
    }

    /// Loads file (explicit path must exist; the default path may be
    /// absent), then env, then flags, and validates.
    pub fn load(flags: &Overrides, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let (path, required) = match &flags.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<FileConfig>(&text)
                .map_err(|source| ConfigError::Parse { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                FileConfig::default()
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::resolve(file, flags, env)
    }

    /// Parses the text of a config file (for tests and `--check`).
    pub fn from_toml(
        text: &str,
        flags: &Overrides,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let file = toml::from_str::<FileConfig>(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            source,
        })?;
        Self::resolve(file, flags, env)
    }

    fn resolve(
        file: FileConfig,
        flags: &Overrides,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let pick = |flag: Option<String>, env_key: &str, file: Option<String>| {
            flag.or_else(|| env.get(env_key).cloned()).or(file)
        };
        let listen_s = pick(flags.listen.clone(), ENV_LISTEN, file.listen)
            .unwrap_or_else(|| "127.0.0.1:7400".to_owned());
        let listen = listen_s.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "listen",
                format!("{listen_s:?} is not an address:port ({e})"),
            )
        })?;
        let data_dir = flags
            .data_dir
            .clone()
            .or_else(|| env.get(ENV_DATA_DIR).map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/berth/scheduler"));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let log_format = match env.get(ENV_LOG_FORMAT).map(String::as_str) {
            Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    ENV_LOG_FORMAT,
                    format!("{other:?} is not one of text, json"),
                ))
            }
            None => file.log_format.unwrap_or(LogFormat::Text),
        };
        let fa = file.arn.unwrap_or_default();
        let d = ArnPrefix::default();
        let arn = ArnPrefix {
            partition: pick(None, ENV_ARN_PARTITION, fa.partition).unwrap_or(d.partition),
            region: pick(None, ENV_ARN_REGION, fa.region).unwrap_or(d.region),
            account: pick(None, ENV_ARN_ACCOUNT, fa.account).unwrap_or(d.account),
        };
        for (name, v) in [
            ("arn.partition", &arn.partition),
            ("arn.region", &arn.region),
            ("arn.account", &arn.account),
        ] {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(
                    name,
                    format!("{v:?} must be non-empty letters, digits and '-'"),
                ));
            }
        }
        let ag = file.agents.unwrap_or_default();
        let duration = |setting: &str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => humantime::parse_duration(&s).map_err(|e| {
                invalid(
                    setting,
                    format!("{s:?} is not a duration like \"5s\" ({e})"),
                )
            }),
        };
        let heartbeat_interval = duration(
            "agents.heartbeat_interval",
            pick(None, ENV_HEARTBEAT_INTERVAL, ag.heartbeat_interval),
            Duration::from_secs(5),
        )?;
        let heartbeat_ttl = duration(
            "agents.heartbeat_ttl",
            pick(None, ENV_HEARTBEAT_TTL, ag.heartbeat_ttl),
            Duration::from_secs(20),
        )?;
        if heartbeat_interval < Duration::from_millis(50) {
            return Err(invalid(
                "agents.heartbeat_interval",
                "must be at least 50ms",
            ));
        }
        if heartbeat_ttl < heartbeat_interval * 2 {
            return Err(invalid(
                "agents.heartbeat_ttl",
                format!(
                    "{} must be at least twice agents.heartbeat_interval ({})",
                    humantime::format_duration(heartbeat_ttl),
                    humantime::format_duration(heartbeat_interval)
                ),
            ));
        }
        let sv = file.services.unwrap_or_default();
        let services = ServiceSettings {
            lost_after: duration(
                "services.lost_after",
                pick(None, ENV_LOST_AFTER, sv.lost_after),
                Duration::from_secs(60),
            )?,
            throttle_base: duration(
                "services.throttle_base",
                pick(None, ENV_SERVICE_THROTTLE_BASE, sv.throttle_base),
                Duration::from_secs(5),
            )?,
            resync: duration(
                "services.resync",
                pick(None, ENV_SERVICE_RESYNC, sv.resync),
                Duration::from_secs(10),
            )?,
        };
        if services.resync < Duration::from_millis(50) {
            return Err(invalid("services.resync", "must be at least 50ms"));
        }
        let fev = file.events.unwrap_or_default();
        let defaults = EventSettings::default();
        let events = EventSettings {
            max_age: duration("events.max_age", fev.max_age, defaults.max_age)?,
            max_count: fev.max_count.unwrap_or(defaults.max_count),
        };
        if events.max_count == 0 {
            return Err(invalid("events.max_count", "must be at least 1"));
        }
        let fwh = file.webhooks.unwrap_or_default();
        let wd = WebhookSettings::default();
        let webhooks = WebhookSettings {
            concurrency: fwh.concurrency.unwrap_or(wd.concurrency),
            connect_timeout: duration(
                "webhooks.connect_timeout",
                fwh.connect_timeout,
                wd.connect_timeout,
            )?,
            request_timeout: duration(
                "webhooks.request_timeout",
                fwh.request_timeout,
                wd.request_timeout,
            )?,
            max_attempts: match env.get(ENV_WEBHOOKS_MAX_ATTEMPTS) {
                Some(v) => v.parse().map_err(|_| {
                    invalid(
                        "webhooks.max_attempts",
                        format!("{v:?} is not a whole number"),
                    )
                })?,
                None => fwh.max_attempts.unwrap_or(wd.max_attempts),
            },
            backoff_base: duration(
                "webhooks.backoff_base",
                pick(None, ENV_WEBHOOKS_BACKOFF_BASE, fwh.backoff_base),
                wd.backoff_base,
            )?,
            backoff_max: duration(
                "webhooks.backoff_max",
                pick(None, ENV_WEBHOOKS_BACKOFF_MAX, fwh.backoff_max),
                wd.backoff_max,
            )?,
            ca_file: fwh.ca_file,
        };
        if webhooks.concurrency == 0 {
            return Err(invalid("webhooks.concurrency", "must be at least 1"));
        }
        if webhooks.max_attempts == 0 {
            return Err(invalid("webhooks.max_attempts", "must be at least 1"));
        }
        if webhooks.connect_timeout.is_zero() || webhooks.request_timeout.is_zero() {
            return Err(invalid(
                "webhooks.request_timeout",
                "timeouts must be above 0",
            ));
        }
        if webhooks.backoff_max < webhooks.backoff_base {
            return Err(invalid(
                "webhooks.backoff_max",
                "must be at least webhooks.backoff_base",
            ));
        }
        let schedules = ScheduleSettings {
            catch_up_window: duration(
                "schedules.catch_up_window",
                file.schedules.and_then(|s| s.catch_up_window),
                Duration::from_secs(3600),
            )?,
            ..Default::default()
        };
        let autoscaling = AutoscalingSettings {
            period: duration(
                "autoscaling.period",
                pick(
                    None,
                    ENV_AUTOSCALING_PERIOD,
                    file.autoscaling.and_then(|a| a.period),
                ),
                Duration::from_secs(60),
            )?,
            ..Default::default()
        };
        if autoscaling.period < Duration::from_secs(1) {
            return Err(invalid("autoscaling.period", "must be at least 1s"));
        }
        let tls = resolve_tls(file.tls.unwrap_or_default(), env)?;
        let bootstrap_token = env
            .get(ENV_BOOTSTRAP_TOKEN)
            .filter(|t| !t.is_empty())
            .map(|t| crate::auth::Token::parse(t.trim()))
            .transpose()
            .map_err(|e| invalid(ENV_BOOTSTRAP_TOKEN, e.to_string()))?;
        let secrets_key_file = match env
            .get(ENV_SECRETS_KEY_FILE)
            .map(PathBuf::from)
            .or(file.secrets.and_then(|s| s.key_file))
        {
            Some(p) if !p.is_absolute() => {
                return Err(invalid(
                    "secrets.key_file",
                    format!("{} must be an absolute path", p.display()),
                ))
            }
            Some(p) => p,
            None => data_dir.join(SECRETS_KEY_FILE_NAME),
        };
        let fe = file.ecs_api.unwrap_or_default();
        let ecs_listen = match pick(flags.ecs_api_listen.clone(), ENV_ECS_API_LISTEN, fe.listen) {
            None => Some(SocketAddr::new(listen.ip(), DEFAULT_ECS_API_PORT)),
            Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v.trim().parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "ecs_api.listen",
                    format!("{v:?} is not an address:port or \"off\" ({e})"),
                )
            })?),
        };
        let metrics_listen = match pick(
            flags.metrics_listen.clone(),
            ENV_METRICS_LISTEN,
            file.metrics.and_then(|m| m.listen),
        ) {
            None => Some(DEFAULT_METRICS_LISTEN),
            Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v.trim().parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "metrics.listen",
                    format!("{v:?} is not an address:port or \"off\" ({e})"),
                )
            })?),
        };
        let ecs_region = pick(None, ENV_ECS_API_REGION, fe.region).filter(|r| !r.is_empty());
        if let Some(r) = &ecs_region {
            if !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(
                    "ecs_api.region",
                    format!("{r:?} must be letters, digits and '-'"),
                ));
            }
        }
        let fd = file.dns.unwrap_or_default();
        let dns_listen = match pick(flags.dns_listen.clone(), ENV_DNS_LISTEN, fd.listen) {
            None => None,
            Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v.trim().parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "dns.listen",
                    format!("{v:?} is not an address:port or \"off\" ({e})"),
                )
            })?),
        };
        let dns_ttl = duration("dns.ttl", pick(None, ENV_DNS_TTL, fd.ttl), DEFAULT_DNS_TTL)?;
        if dns_ttl.subsec_nanos() != 0 || dns_ttl > MAX_DNS_TTL {
            return Err(invalid(
                "dns.ttl",
                format!(
                    "{} must be whole seconds, at most 1 day",
                    humantime::format_duration(dns_ttl)
                ),
            ));
        }
        let retention = resolve_retention(file.retention, env)?;
        Ok(Self {
            retention,
            dns: DnsSettings {
                listen: dns_listen,
                ttl: dns_ttl,
            },
            ecs_api: EcsApiSettings {
                listen: ecs_listen,
                region: ecs_region,
            },
            metrics_listen,
            schedules,
            autoscaling,
            listen,
            data_dir,
            log_format,
            arn,
            heartbeat_interval,
            heartbeat_ttl,
            services,
            tls,
            bootstrap_token,
            secrets_key_file,
            events,
            webhooks,
        })
    }
}

pub const ENV_RETENTION_STOPPED_TASKS: &str = "BERTH_RETENTION_STOPPED_TASKS";
pub const ENV_RETENTION_CLIENT_TOKENS: &str = "BERTH_RETENTION_CLIENT_TOKENS";
pub const ENV_RETENTION_AUDIT_MAX_AGE: &str = "BERTH_RETENTION_AUDIT_MAX_AGE";
pub const ENV_RETENTION_AUDIT_MAX_RECORDS: &str = "BERTH_RETENTION_AUDIT_MAX_RECORDS";
pub const ENV_RETENTION_INTERVAL: &str = "BERTH_RETENTION_INTERVAL";

/// `[retention]` in `scheduler.toml`; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetention {
    /// e.g. "1h": how long a STOPPED task stays describable.
    stopped_tasks: Option<String>,
    /// e.g. "8h": how long a RunTask clientToken is honoured.
    client_tokens: Option<String>,
    /// e.g. "90d": audit records older than this are removed.
    audit_max_age: Option<String>,
    /// Audit records beyond this many are removed, oldest first.
    audit_max_records: Option<u64>,
    /// e.g. "30s": how often the pruner looks.
    interval: Option<String>,
}

/// The validated `[retention]` settings (what the pruner keeps how long,
/// `docs/retention.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    pub stopped_tasks: Duration,
    pub client_tokens: Duration,
    pub audit_max_age: Duration,
    pub audit_max_records: u64,
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            stopped_tasks: Duration::from_secs(3600),
            client_tokens: Duration::from_secs(8 * 3600),
            audit_max_age: Duration::from_secs(90 * 24 * 3600),
            audit_max_records: 100_000,
            interval: Duration::from_secs(30),
        }
    }
}

/// The shortest window accepted for tasks and tokens.
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// The longest window accepted (ten years; the store counts milliseconds).
const MAX_WINDOW: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Reads `[retention]`, overridden by the `BERTH_RETENTION_*` variables.
fn resolve_retention(
    file: Option<FileRetention>,
    env: &HashMap<String, String>,
) -> Result<RetentionSettings, ConfigError> {
    let f = file.unwrap_or_default();
    let d = RetentionSettings::default();
    let duration = |setting: &str, env_key: &str, v: Option<String>, default: Duration| {
        let Some(s) = env.get(env_key).cloned().or(v) else {
            return Ok(default);
        };
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            invalid(
                setting,
                format!("{s:?} is not a duration like \"1h\" ({e})"),
            )
        })?;
        if d < MIN_WINDOW || d > MAX_WINDOW {
            return Err(invalid(
                setting,
                format!("{s:?} must be between 1s and 10 years"),
            ));
        }
        Ok(d)
    };
    let audit_max_records = match env.get(ENV_RETENTION_AUDIT_MAX_RECORDS) {
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            invalid(
                "retention.audit_max_records",
                format!("{v:?} is not a whole number"),
            )
        })?,
        None => f.audit_max_records.unwrap_or(d.audit_max_records),
    };
    if audit_max_records == 0 {
        return Err(invalid(
            "retention.audit_max_records",
            "must be at least 1".to_owned(),
        ));
    }
    let s = RetentionSettings {
        stopped_tasks: duration(
            "retention.stopped_tasks",
            ENV_RETENTION_STOPPED_TASKS,
            f.stopped_tasks,
            d.stopped_tasks,
        )?,
        client_tokens: duration(
            "retention.client_tokens",
            ENV_RETENTION_CLIENT_TOKENS,
            f.client_tokens,
            d.client_tokens,
        )?,
        audit_max_age: duration(
            "retention.audit_max_age",
            ENV_RETENTION_AUDIT_MAX_AGE,
            f.audit_max_age,
            d.audit_max_age,
        )?,
        audit_max_records,
        interval: duration(
            "retention.interval",
            ENV_RETENTION_INTERVAL,
            f.interval,
            d.interval,
        )?,
    };
    if s.interval > s.stopped_tasks {
        return Err(invalid(
            "retention.interval",
            format!(
                "{} must not be longer than retention.stopped_tasks ({})",
                humantime::format_duration(s.interval),
                humantime::format_duration(s.stopped_tasks)
            ),
        ));
    }
    Ok(s)
}

fn resolve_tls(file: FileTls, env: &HashMap<String, String>) -> Result<TlsSettings, ConfigError> {
    let path = |key: &str, file: Option<PathBuf>| {
        env.get(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or(file)
    };
    let server_names = match env.get(ENV_TLS_SERVER_NAMES) {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => file.server_names.unwrap_or_default(),
    };
    for n in &server_names {
        let ok = n.parse::<std::net::IpAddr>().is_ok()
            || (!n.is_empty()
                && n.len() <= 253
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.*".contains(c)));
        if !ok {
            return Err(invalid(
                "tls.server_names",
                format!("{n:?} is neither a DNS name nor an IP address"),
            ));
        }
    }
    let pair = |a: &str, ka: &str, fa, b: &str, kb: &str, fb| match (path(ka, fa), path(kb, fb)) {
        (Some(x), Some(y)) => Ok(Some((x, y))),
        (None, None) => Ok(None),
        _ => Err(invalid(
            &format!("tls.{a}"),
            format!("tls.{a} and tls.{b} must be set together"),
        )),
    };
    let ca = pair(
        "ca_cert",
        ENV_TLS_CA_CERT,
        file.ca_cert,
        "ca_key",
        ENV_TLS_CA_KEY,
        file.ca_key,
    )?;
    let server = pair(
        "server_cert",
        ENV_TLS_SERVER_CERT,
        file.server_cert,
        "server_key",
        ENV_TLS_SERVER_KEY,
        file.server_key,
    )?;
    let client_validity = match env
        .get(ENV_TLS_CERT_VALIDITY)
        .cloned()
        .or(file.cert_validity)
    {
        None => DEFAULT_CLIENT_VALIDITY,
        Some(s) => humantime::parse_duration(&s).map_err(|e| {
            invalid(
                "tls.cert_validity",
                format!("{s:?} is not a duration like \"30d\" ({e})"),
            )
        })?,
    };
    if client_validity < Duration::from_secs(1) {
        return Err(invalid("tls.cert_validity", "must be at least 1s"));
    }
    Ok(TlsSettings {
        server_names,
        ca,
        server,
        client_validity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn metrics_listen_defaults_to_loopback_and_can_be_off() {
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.metrics_listen, Some(DEFAULT_METRICS_LISTEN));
        let c = Config::from_toml(
            "[metrics]\nlisten = \"0.0.0.0:9100\"\n",
            &Overrides::default(),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            c.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:9100")
        );
        let c = Config::from_toml(
            "[metrics]\nlisten = \"0.0.0.0:9100\"\n",
            &Overrides::default(),
            &env(&[(ENV_METRICS_LISTEN, "off")]),
        )
        .unwrap();
        assert_eq!(c.metrics_listen, None);
        let flags = Overrides {
            metrics_listen: Some("127.0.0.1:1".into()),
            ..Overrides::default()
        };
        let c = Config::from_toml("", &flags, &env(&[(ENV_METRICS_LISTEN, "off")])).unwrap();
        assert_eq!(c.metrics_listen.map(|a| a.port()), Some(1));
        let err = Config::from_toml(
            "[metrics]\nlisten = \"nowhere\"\n",
            &Overrides::default(),
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("metrics.listen"), "{err}");
    }

    #[test]
    fn defaults() {
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7400");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/berth/scheduler"));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.arn, ArnPrefix::default());
        assert_eq!(
            c.secrets_key_file,
            PathBuf::from("/var/lib/berth/scheduler/secrets.key")
        );
    }

    #[test]
    fn secrets_key_file_from_file_or_env() {
        let text = "[secrets]\nkey_file = \"/etc/berth/secrets.key\"\n";
        let c = Config::from_toml(text, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.secrets_key_file, PathBuf::from("/etc/berth/secrets.key"));
        let e = env(&[(ENV_SECRETS_KEY_FILE, "/run/creds/key")]);
        let c = Config::from_toml(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.secrets_key_file, PathBuf::from("/run/creds/key"));
        let err = Config::from_toml(
            "[secrets]\nkey_file = \"rel\"",
            &Overrides::default(),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("secrets.key_file:"), "{err}");
    }

    #[test]
    fn events_section_sets_retention() {
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.events, EventSettings::default());
        assert_eq!(c.events.max_age, Duration::from_secs(24 * 3600));
        assert_eq!(c.events.max_count, 100_000);
        let text = "[events]\nmax_age = \"2h\"\nmax_count = 50\n";
        let c = Config::from_toml(text, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.events.max_age, Duration::from_secs(7200));
        assert_eq!(c.events.max_count, 50);
        for (bad, key) in [
            ("[events]\nmax_age = \"a while\"", "events.max_age:"),
            ("[events]\nmax_count = 0", "events.max_count:"),
        ] {
            let err = Config::from_toml(bad, &Overrides::default(), &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{err}");
        }
    }

    #[test]
    fn webhooks_section_sets_delivery() {
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.webhooks, WebhookSettings::default());
        let text = "[webhooks]\nconcurrency = 2\nmax_attempts = 3\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\nrequest_timeout = \"2s\"\n";
        let c = Config::from_toml(text, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.webhooks.concurrency, 2);
        assert_eq!(c.webhooks.max_attempts, 3);
        assert_eq!(c.webhooks.backoff_base, Duration::from_millis(100));
        assert_eq!(c.webhooks.backoff_max, Duration::from_secs(1));
        assert_eq!(c.webhooks.request_timeout, Duration::from_secs(2));
        let c = Config::from_toml(
            text,
            &Overrides::default(),
            &env(&[
                (ENV_WEBHOOKS_MAX_ATTEMPTS, "5"),
                (ENV_WEBHOOKS_BACKOFF_BASE, "50ms"),
            ]),
        )
        .unwrap();
        assert_eq!(c.webhooks.max_attempts, 5);
        assert_eq!(c.webhooks.backoff_base, Duration::from_millis(50));
        for (bad, key) in [
            ("[webhooks]\nconcurrency = 0", "webhooks.concurrency:"),
            ("[webhooks]\nmax_attempts = 0", "webhooks.max_attempts:"),
            (
                "[webhooks]\nbackoff_base = \"1m\"\nbackoff_max = \"1s\"",
                "webhooks.backoff_max:",
            ),
            ("[webhooks]\nretries = 3", "unknown field"),
        ] {
            let err = Config::from_toml(bad, &Overrides::default(), &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key) || err.contains(key), "{err}");
        }
    }

    #[test]
    fn schedules_and_autoscaling_sections() {
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.schedules.catch_up_window, Duration::from_secs(3600));
        assert_eq!(c.autoscaling.period, Duration::from_secs(60));
        let text = "[schedules]\ncatch_up_window = \"10m\"\n[autoscaling]\nperiod = \"30s\"\n";
        let c = Config::from_toml(text, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.schedules.catch_up_window, Duration::from_secs(600));
        assert_eq!(c.autoscaling.period, Duration::from_secs(30));
        let c = Config::from_toml(
            text,
            &Overrides::default(),
            &env(&[(ENV_AUTOSCALING_PERIOD, "2s")]),
        )
        .unwrap();
        assert_eq!(c.autoscaling.period, Duration::from_secs(2));
        for (text, key) in [
            (
                "[schedules]\ncatch_up_window = \"later\"",
                "schedules.catch_up_window:",
            ),
            ("[autoscaling]\nperiod = \"10ms\"", "autoscaling.period:"),
            ("[autoscaling]\nwindow = \"1m\"", ""),
        ] {
            let err = Config::from_toml(text, &Overrides::default(), &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn services_section_and_its_env_overrides() {
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.services.lost_after, Duration::from_secs(60));
        assert_eq!(c.services.throttle_base, Duration::from_secs(5));
        assert_eq!(c.services.resync, Duration::from_secs(10));
        let text = "[services]\nlost_after = \"2m\"\nthrottle_base = \"1s\"\nresync = \"3s\"\n";
        let c = Config::from_toml(text, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.services.lost_after, Duration::from_secs(120));
        assert_eq!(c.services.throttle_base, Duration::from_secs(1));
        let e = env(&[(ENV_LOST_AFTER, "30s"), (ENV_SERVICE_RESYNC, "1s")]);
        let c = Config::from_toml(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.services.lost_after, Duration::from_secs(30));
        assert_eq!(c.services.resync, Duration::from_secs(1));
        let err = Config::from_toml(
            "[services]\nlost_after = \"soon\"",
            &Overrides::default(),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("services.lost_after:"), "{err}");
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let text = "listen = \"127.0.0.1:1\"\ndata_dir = \"/file\"\n[arn]\nregion = \"eu-1\"\n";
        let e = env(&[(ENV_LISTEN, "127.0.0.1:2"), (ENV_DATA_DIR, "/env")]);
        let c = Config::from_toml(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.data_dir, PathBuf::from("/env"));
        assert_eq!(c.arn.region, "eu-1");
        let flags = Overrides {
            listen: Some("127.0.0.1:3".into()),
            data_dir: Some("/flag".into()),
            ..Default::default()
        };
        let c = Config::from_toml(text, &flags, &e).unwrap();
        assert_eq!(c.listen.port(), 3);
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
    }

    #[test]
    fn tls_section_and_its_env_overrides() {
        let text =
            "[tls]\nserver_names = [\"sched.example\", \"10.0.0.5\"]\ncert_validity = \"7d\"\n\
                    ca_cert = \"/etc/berth/ca.pem\"\nca_key = \"/etc/berth/ca.key\"\n";
        let c = Config::from_toml(text, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.tls.server_names, ["sched.example", "10.0.0.5"]);
        assert_eq!(c.tls.client_validity, Duration::from_secs(7 * 86400));
        assert_eq!(
            c.tls.ca,
            Some(("/etc/berth/ca.pem".into(), "/etc/berth/ca.key".into()))
        );
        assert_eq!(c.tls.server, None);
        let e = env(&[
            (ENV_TLS_SERVER_NAMES, "a.example, b.example"),
            (ENV_TLS_CERT_VALIDITY, "1h"),
        ]);
        let c = Config::from_toml(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.tls.server_names, ["a.example", "b.example"]);
        assert_eq!(c.tls.client_validity, Duration::from_secs(3600));
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.tls, TlsSettings::default());

        let bad = |text: &str| {
            Config::from_toml(text, &Overrides::default(), &env(&[]))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[tls]\nca_cert = \"/x\"").starts_with("tls.ca_cert:"));
        assert!(bad("[tls]\nserver_names = [\"a b\"]").starts_with("tls.server_names:"));
        assert!(bad("[tls]\ncert_validity = \"soon\"").starts_with("tls.cert_validity:"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_toml("listne = \"x\"", &Overrides::default(), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `listne`"), "{err}");
        let err = Config::from_toml("[agents]\nttl = \"1s\"", &Overrides::default(), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `ttl`"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let bad = |text: &str, e: &[(&str, &str)]| {
            Config::from_toml(text, &Overrides::default(), &env(e))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("listen = \"nope\"", &[]).starts_with("listen:"));
        assert!(
            bad("", &[(ENV_HEARTBEAT_INTERVAL, "soon")]).starts_with("agents.heartbeat_interval:")
        );
        assert!(bad(
            "[agents]\nheartbeat_interval = \"10s\"\nheartbeat_ttl = \"11s\"",
            &[]
        )
        .starts_with("agents.heartbeat_ttl:"));
        assert!(bad("[arn]\naccount = \"a b\"", &[]).starts_with("arn.account:"));
        assert!(bad("", &[(ENV_LOG_FORMAT, "xml")]).starts_with("BERTH_LOG_FORMAT:"));
        assert!(bad("", &[(ENV_BOOTSTRAP_TOKEN, "hunter2")]).starts_with("BERTH_BOOTSTRAP_TOKEN:"));
    }

    #[test]
    fn bootstrap_token_comes_from_the_environment_only() {
        let t = crate::auth::Token::generate();
        let c = Config::from_toml(
            "",
            &Overrides::default(),
            &env(&[(ENV_BOOTSTRAP_TOKEN, &t.expose())]),
        )
        .unwrap();
        assert_eq!(c.bootstrap_token, Some(t));
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.bootstrap_token, None);
        assert!(
            Config::from_toml("bootstrap_token = \"x\"", &Overrides::default(), &env(&[])).is_err()
        );
    }

    #[test]
    fn dns_is_off_by_default_and_layered_like_the_other_listeners() {
        let c = Config::from_toml("", &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.dns, DnsSettings::default());
        assert_eq!(c.dns.listen, None);
        assert_eq!(c.dns.ttl, Duration::from_secs(5));
        let text = "[dns]\nlisten = \"127.0.0.1:5353\"\nttl = \"30s\"\n";
        let c = Config::from_toml(text, &Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.dns.listen, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(c.dns.ttl, Duration::from_secs(30));
        let e = env(&[(ENV_DNS_LISTEN, "10.0.0.1:53"), (ENV_DNS_TTL, "1s")]);
        let c = Config::from_toml(text, &Overrides::default(), &e).unwrap();
        assert_eq!(c.dns.listen, Some("10.0.0.1:53".parse().unwrap()));
        assert_eq!(c.dns.ttl, Duration::from_secs(1));
        let flags = Overrides {
            dns_listen: Some("off".into()),
            ..Default::default()
        };
        let c = Config::from_toml(text, &flags, &e).unwrap();
        assert_eq!(c.dns.listen, None);
        let bad = |text: &str| {
            Config::from_toml(text, &Overrides::default(), &env(&[]))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[dns]\nlisten = \"53\"").starts_with("dns.listen:"));
        assert!(bad("[dns]\nttl = \"1500ms\"").starts_with("dns.ttl:"));
        assert!(bad("[dns]\nttl = \"2d\"").starts_with("dns.ttl:"));
        assert!(bad("[dns]\nport = 53").contains("unknown field `port`"));
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let flags = Overrides {
            config: Some("/nonexistent/berth.toml".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::load(&flags, &env(&[])),
            Err(ConfigError::Read { .. })
        ));
    }
}
