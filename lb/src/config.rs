//! `/etc/berth/lb.toml`: where the scheduler is, how HAProxy runs, and the
//! listeners an operator declares as on an ALB (`[[listener]]` with
//! `[[listener.rule]]`s). Parsing is a pure function of the file's text and
//! the token from the environment ([`Config::parse`]), and everything is
//! validated into [`Config`] before any socket is bound; every error names
//! the key at fault. `lb/lb.example.toml` documents each key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default config file.
pub const DEFAULT_PATH: &str = "/etc/berth/lb.toml";
/// The environment variable that holds the operator token (as for berthctl).
pub const TOKEN_ENV: &str = "BERTH_TOKEN";
/// The default scheduler endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://127.0.0.1:7400";
/// The default HAProxy binary (Debian's).
pub const DEFAULT_HAPROXY: &str = "/usr/sbin/haproxy";
/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/berth/lb";
/// Server slots per backend when the file sets none.
pub const DEFAULT_SLOTS: u32 = 16;
/// The most slots one backend may get (growth stops there).
pub const MAX_SLOTS: u32 = 4096;
/// How often the whole last snapshot is applied again to heal drift.
pub const DEFAULT_REAPPLY_SECONDS: u64 = 10;
/// How old a remembered snapshot may be to be served after a restart.
pub const DEFAULT_REMEMBER_TARGETS_SECONDS: u64 = 3600;

/// Why the config is unusable; each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("`{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

// ------------------------------------------------------------------ the file

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    scheduler: RawScheduler,
    #[serde(default)]
    haproxy: RawHaproxy,
    #[serde(default)]
    listener: Vec<RawListener>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    endpoint: Option<String>,
    ca_cert: Option<PathBuf>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHaproxy {
    binary: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    mode: Option<String>,
    master_socket: Option<PathBuf>,
    runtime_socket: Option<PathBuf>,
    config_file: Option<PathBuf>,
    slots: Option<u32>,
    reapply_seconds: Option<u64>,
    remember_targets_seconds: Option<u64>,
    #[serde(default)]
    timeouts: RawTimeouts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect_seconds: Option<u64>,
    idle_seconds: Option<u64>,
    http_request_seconds: Option<u64>,
    keep_alive_seconds: Option<u64>,
    queue_seconds: Option<u64>,
    tunnel_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Option<String>,
    bind: Option<String>,
    protocol: Option<String>,
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
    default_target_group: Option<String>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    priority: Option<u32>,
    #[serde(default)]
    host: Vec<String>,
    #[serde(default)]
    path_prefix: Vec<String>,
    target_group: Option<String>,
}

// ---------------------------------------------------------- validated config

/// Everything `berth-lb haproxy` needs, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub scheduler: SchedulerConfig,
    pub haproxy: HaproxyConfig,
    pub listeners: Vec<Listener>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("scheduler", &self.scheduler)
            .field("haproxy", &self.haproxy)
            .field("listeners", &self.listeners)
            .finish()
    }
}

/// Where the scheduler is and how to prove who we are.
#[derive(Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// `https://host:port`.
    pub endpoint: String,
    /// The cluster CA to trust (a PEM file).
    pub ca_cert: PathBuf,
    /// The operator token: `BERTH_TOKEN`, else the contents of `token_file`.
    pub token: Option<String>,
}

impl std::fmt::Debug for SchedulerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerConfig")
            .field("endpoint", &self.endpoint)
            .field("ca_cert", &self.ca_cert)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Who runs HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `berth-lb` starts HAProxy (master-worker) and restarts it if it dies.
    Supervise,
    /// Someone else runs it (systemd's `haproxy.service` on the generated
    /// config); `berth-lb` only talks to its sockets.
    External,
}

/// How HAProxy runs and where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyConfig {
    pub binary: PathBuf,
    pub state_dir: PathBuf,
    pub mode: Mode,
    /// The master CLI (`-S`), for `reload`.
    pub master_socket: PathBuf,
    /// The admin runtime socket (`stats socket ... level admin`).
    pub runtime_socket: PathBuf,
    /// The generated `haproxy.cfg`.
    pub config_file: PathBuf,
    /// Server slots per backend at start.
    pub slots: u32,
    /// How often the whole last snapshot is applied again.
    pub reapply: Duration,
    /// How old the remembered snapshot may be for a restarted `berth-lb`
    /// to serve it until the scheduler answers; `None`: never served.
    pub remember_targets: Option<Duration>,
    /// The proxy's timeouts (`[haproxy.timeouts]`).
    pub timeouts: Timeouts,
}

/// HAProxy's timeouts, in seconds, as `[haproxy.timeouts]` sets them. `idle`
/// is an ALB's `idle_timeout.timeout_seconds` (client and server inactivity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection to a target (`timeout connect`).
    pub connect: u64,
    /// Inactivity on either side of a connection (`timeout client`/`server`).
    pub idle: u64,
    /// Receiving a whole HTTP request's headers (`timeout http-request`).
    pub http_request: u64,
    /// Waiting for the next request on a kept-alive connection.
    pub keep_alive: u64,
    /// Waiting for a free server slot (`timeout queue`).
    pub queue: u64,
    /// An upgraded (WebSocket) or TCP tunnel's inactivity (`timeout tunnel`).
    pub tunnel: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: 5,
            idle: 60,
            http_request: 10,
            keep_alive: 10,
            queue: 30,
            tunnel: 3600,
        }
    }
}

impl HaproxyConfig {
    /// Where HAProxy keeps server state across reloads.
    pub fn server_state_file(&self) -> PathBuf {
        self.state_dir.join("server-state")
    }

    /// The last snapshot of the targets, remembered across restarts.
    pub fn remembered_targets_file(&self) -> PathBuf {
        self.state_dir.join("last-targets.json")
    }

    /// The combined certificate and key of an HTTPS listener.
    pub fn combined_pem(&self, listener: &str) -> PathBuf {
        self.state_dir.join("certs").join(format!("{listener}.pem"))
    }
}

/// A listener's protocol, as on an ALB (HTTP, HTTPS) or an NLB (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerProtocol {
    Http,
    Https { certificate: PathBuf, key: PathBuf },
    Tcp,
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Letters, digits, `-` and `_`; unique.
    pub name: String,
    pub bind: SocketAddr,
    pub protocol: ListenerProtocol,
    /// The target group's name (an ARN in the file is reduced to its name).
    pub default_target_group: String,
    /// By ascending priority.
    pub rules: Vec<Rule>,
}

/// One `[[listener.rule]]`: every non-empty condition must match (any of
/// its values); the lowest priority that matches wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub hosts: Vec<HostPattern>,
    pub path_prefixes: Vec<String>,
    pub target_group: String,
}

/// A host-header value: exact, or with ALB's wildcards (`*` any run of
/// characters, `?` exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    Wildcard(String),
}

impl HostPattern {
    /// The regular expression a wildcard pattern stands for (anchored,
    /// matched case-insensitively).
    pub fn regex(&self) -> String {
        let text = match self {
            Self::Exact(s) | Self::Wildcard(s) => s,
        };
        let mut re = String::from("^");
        for c in text.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                '.' => re.push_str("\\."),
                c => re.push(c),
            }
        }
        re.push('$');
        re
    }
}

impl Config {
    /// Reads and validates `path`; `env_token` is `BERTH_TOKEN`'s value.
    pub fn load(path: &Path, env_token: Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, env_token)
    }

    /// Parses and validates the text of `path` (reads only the token file).
    pub fn parse(path: &Path, text: &str, env_token: Option<String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let scheduler = scheduler(raw.scheduler, env_token)?;
        let haproxy = haproxy(raw.haproxy)?;
        let listeners = listeners(raw.listener)?;
        Ok(Self {
            scheduler,
            haproxy,
            listeners,
        })
    }

    /// The target groups the listeners name, each once.
    pub fn target_groups(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for l in &self.listeners {
            out.insert(l.default_target_group.clone());
            for r in &l.rules {
                out.insert(r.target_group.clone());
            }
        }
        out
    }

    /// Whether a target group is used in TCP mode (else HTTP).
    pub fn group_is_tcp(&self, group: &str) -> bool {
        self.listeners
            .iter()
            .any(|l| l.protocol == ListenerProtocol::Tcp && l.default_target_group == group)
    }
}

fn scheduler(raw: RawScheduler, env_token: Option<String>) -> Result<SchedulerConfig, ConfigError> {
    let endpoint = raw
        .endpoint
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let endpoint = if endpoint.contains("://") {
        endpoint
    } else {
        format!("https://{endpoint}")
    };
    if !endpoint.starts_with("https://") || endpoint.len() <= "https://".len() {
        return Err(invalid(
            "scheduler.endpoint",
            format!("{endpoint:?}: the scheduler speaks TLS only: use https://host:port"),
        ));
    }
    let ca_cert = raw.ca_cert.ok_or_else(|| {
        invalid(
            "scheduler.ca_cert",
            "missing: the cluster CA's PEM file (the scheduler's ca.pem) is required",
        )
    })?;
    let token = match env_token.filter(|t| !t.trim().is_empty()) {
        Some(t) => Some(t.trim().to_owned()),
        None => match raw.token_file {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    invalid("scheduler.token_file", format!("{}: {e}", p.display()))
                })?;
                let t = text.trim();
                if t.is_empty() {
                    return Err(invalid(
                        "scheduler.token_file",
                        format!("{} is empty", p.display()),
                    ));
                }
                Some(t.to_owned())
            }
            None => None,
        },
    };
    Ok(SchedulerConfig {
        endpoint,
        ca_cert,
        token,
    })
}

fn haproxy(raw: RawHaproxy) -> Result<HaproxyConfig, ConfigError> {
    let state_dir = raw
        .state_dir
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    if !state_dir.is_absolute() {
        return Err(invalid("haproxy.state_dir", "must be an absolute path"));
    }
    let mode = match raw.mode.as_deref() {
        None | Some("supervise") => Mode::Supervise,
        Some("external") => Mode::External,
        Some(other) => {
            return Err(invalid(
                "haproxy.mode",
                format!("{other:?}: expected \"supervise\" or \"external\""),
            ))
        }
    };
    let slots = raw.slots.unwrap_or(DEFAULT_SLOTS);
    if !(1..=MAX_SLOTS).contains(&slots) {
        return Err(invalid(
            "haproxy.slots",
            format!("{slots}: must be 1–{MAX_SLOTS}"),
        ));
    }
    let reapply = raw.reapply_seconds.unwrap_or(DEFAULT_REAPPLY_SECONDS);
    if !(1..=3600).contains(&reapply) {
        return Err(invalid(
            "haproxy.reapply_seconds",
            format!("{reapply}: must be 1–3600"),
        ));
    }
    let remember = raw
        .remember_targets_seconds
        .unwrap_or(DEFAULT_REMEMBER_TARGETS_SECONDS);
    if remember > 7 * 86400 {
        return Err(invalid(
            "haproxy.remember_targets_seconds",
            format!("{remember}: must be 0 (never) to 604800 (a week)"),
        ));
    }
    let timeouts = timeouts(raw.timeouts)?;
    let master_socket = raw
        .master_socket
        .unwrap_or_else(|| state_dir.join("master.sock"));
    let runtime_socket = raw
        .runtime_socket
        .unwrap_or_else(|| state_dir.join("admin.sock"));
    for (key, p) in [
        ("haproxy.master_socket", &master_socket),
        ("haproxy.runtime_socket", &runtime_socket),
    ] {
        // sun_path holds 108 bytes with its NUL.
        if p.as_os_str().len() > 100 {
            return Err(invalid(
                key,
                "longer than a unix socket path may be (100 bytes)",
            ));
        }
    }
    Ok(HaproxyConfig {
        binary: raw.binary.unwrap_or_else(|| PathBuf::from(DEFAULT_HAPROXY)),
        config_file: raw
            .config_file
            .unwrap_or_else(|| state_dir.join("haproxy.cfg")),
        state_dir,
        mode,
        master_socket,
        runtime_socket,
        slots,
        reapply: Duration::from_secs(reapply),
        remember_targets: (remember > 0).then(|| Duration::from_secs(remember)),
        timeouts,
    })
}

fn timeouts(raw: RawTimeouts) -> Result<Timeouts, ConfigError> {
    let d = Timeouts::default();
    let pick = |key: &str, value: Option<u64>, default: u64, max: u64| match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err(invalid(
            format!("haproxy.timeouts.{key}"),
            format!("{v}: must be 1–{max} seconds"),
        )),
    };
    Ok(Timeouts {
        connect: pick("connect_seconds", raw.connect_seconds, d.connect, 60)?,
        // An ALB's idle timeout may be 1–4000 seconds.
        idle: pick("idle_seconds", raw.idle_seconds, d.idle, 4000)?,
        http_request: pick(
            "http_request_seconds",
            raw.http_request_seconds,
            d.http_request,
            300,
        )?,
        keep_alive: pick(
            "keep_alive_seconds",
            raw.keep_alive_seconds,
            d.keep_alive,
            3600,
        )?,
        queue: pick("queue_seconds", raw.queue_seconds, d.queue, 3600)?,
        tunnel: pick("tunnel_seconds", raw.tunnel_seconds, d.tunnel, 86400)?,
    })
}

/// A target group reference (name or ARN) reduced to the group's name.
pub fn group_name(key: &str, reference: &str) -> Result<String, ConfigError> {
    let name = match reference.split_once(":targetgroup/") {
        Some((prefix, rest)) if prefix.starts_with("arn:") => {
            rest.split('/').next().unwrap_or_default()
        }
        _ => reference,
    };
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        return Err(invalid(
            key,
            format!(
                "{reference:?} is not a target group name (1–32 letters, digits and hyphens) \
                 or ARN"
            ),
        ));
    }
    Ok(name.to_owned())
}

fn listeners(raw: Vec<RawListener>) -> Result<Vec<Listener>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid("listener", "no [[listener]]: declare at least one"));
    }
    let mut names = BTreeSet::new();
    let mut binds = BTreeSet::new();
    let mut out = Vec::new();
    for (i, l) in raw.into_iter().enumerate() {
        let at = format!("listener[{i}]");
        let name = l
            .name
            .ok_or_else(|| invalid(format!("{at}.name"), "missing"))?;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                format!("{at}.name"),
                format!("{name:?}: 1–64 letters, digits, '-' and '_'"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(
                format!("{at}.name"),
                format!("{name:?} is declared twice"),
            ));
        }
        let at = format!("listener {name:?}");
        let bind_text = l
            .bind
            .ok_or_else(|| invalid(format!("{at}.bind"), "missing (e.g. \"0.0.0.0:8080\")"))?;
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            invalid(
                format!("{at}.bind"),
                format!("{bind_text:?} is not an address:port such as \"0.0.0.0:8080\""),
            )
        })?;
        if !binds.insert(bind) {
            return Err(invalid(
                format!("{at}.bind"),
                format!("{bind} is bound by another listener"),
            ));
        }
        let protocol = match l.protocol.as_deref().unwrap_or("HTTP") {
            "HTTP" => ListenerProtocol::Http,
            "HTTPS" => {
                let certificate = l.certificate.clone().ok_or_else(|| {
                    invalid(
                        format!("{at}.certificate"),
                        "required for HTTPS (a PEM file)",
                    )
                })?;
                let key = l.key.clone().ok_or_else(|| {
                    invalid(format!("{at}.key"), "required for HTTPS (a PEM file)")
                })?;
                ListenerProtocol::Https { certificate, key }
            }
            "TCP" => ListenerProtocol::Tcp,
            other => {
                return Err(invalid(
                    format!("{at}.protocol"),
                    format!("{other:?}: expected HTTP, HTTPS or TCP"),
                ))
            }
        };
        if !matches!(protocol, ListenerProtocol::Https { .. }) {
            for (k, v) in [("certificate", &l.certificate), ("key", &l.key)] {
                if v.is_some() {
                    return Err(invalid(
                        format!("{at}.{k}"),
                        "only HTTPS listeners take one",
                    ));
                }
            }
        }
        let default_ref = l.default_target_group.ok_or_else(|| {
            invalid(
                format!("{at}.default_target_group"),
                "missing: the target group that gets what no rule matches",
            )
        })?;
        let default_target_group = group_name(&format!("{at}.default_target_group"), &default_ref)?;
        if protocol == ListenerProtocol::Tcp && !l.rule.is_empty() {
            return Err(invalid(
                format!("{at}.rule"),
                "a TCP listener has no rules (it sees no host or path)",
            ));
        }
        let rules = rules(&at, l.rule)?;
        out.push(Listener {
            name,
            bind,
            protocol,
            default_target_group,
            rules,
        });
    }
    check_modes(&out)?;
    Ok(out)
}

fn rules(at: &str, raw: Vec<RawRule>) -> Result<Vec<Rule>, ConfigError> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("{at}.rule[{i}].{k}");
        let priority = r
            .priority
            .ok_or_else(|| invalid(key("priority"), "missing (1–50000, lowest first)"))?;
        if !(1..=50_000).contains(&priority) {
            return Err(invalid(
                key("priority"),
                format!("{priority}: must be 1–50000"),
            ));
        }
        if let Some(other) = seen.insert(priority, i) {
            return Err(invalid(
                key("priority"),
                format!("{priority} is also rule[{other}]'s"),
            ));
        }
        if r.host.is_empty() && r.path_prefix.is_empty() {
            return Err(invalid(
                format!("{at}.rule[{i}]"),
                "needs a condition: `host`, `path_prefix` or both",
            ));
        }
        let mut hosts = Vec::new();
        for h in &r.host {
            hosts.push(host_pattern(&key("host"), h)?);
        }
        for p in &r.path_prefix {
            let ok = p.starts_with('/')
                && p.len() <= 128
                && p.chars()
                    .all(|c| c.is_ascii_graphic() && c != '\'' && c != '"');
            if !ok {
                return Err(invalid(
                    key("path_prefix"),
                    format!(
                        "{p:?}: must start with '/' and hold up to 128 printable characters \
                         without quotes or spaces"
                    ),
                ));
            }
        }
        let tg = r
            .target_group
            .ok_or_else(|| invalid(key("target_group"), "missing"))?;
        out.push(Rule {
            priority,
            hosts,
            path_prefixes: r.path_prefix,
            target_group: group_name(&key("target_group"), &tg)?,
        });
    }
    out.sort_by_key(|r| r.priority);
    Ok(out)
}

fn host_pattern(key: &str, h: &str) -> Result<HostPattern, ConfigError> {
    let ok = !h.is_empty()
        && h.len() <= 128
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?'));
    if !ok {
        return Err(invalid(
            key,
            format!("{h:?}: up to 128 letters, digits, '-', '.', and the wildcards '*' and '?'"),
        ));
    }
    let lower = h.to_ascii_lowercase();
    Ok(if h.contains(['*', '?']) {
        HostPattern::Wildcard(lower)
    } else {
        HostPattern::Exact(lower)
    })
}

/// A backend has one mode: a target group cannot serve both a TCP listener
/// and an HTTP(S) one.
fn check_modes(listeners: &[Listener]) -> Result<(), ConfigError> {
    let mut mode: BTreeMap<&str, (&str, bool)> = BTreeMap::new();
    for l in listeners {
        let tcp = l.protocol == ListenerProtocol::Tcp;
        let groups =
            std::iter::once(&l.default_target_group).chain(l.rules.iter().map(|r| &r.target_group));
        for g in groups {
            match mode.get(g.as_str()) {
                Some((other, other_tcp)) if *other_tcp != tcp => {
                    return Err(invalid(
                        format!("listener {:?}", l.name),
                        format!(
                            "target group {g:?} is also used by listener {other:?} in {} mode; \
                             a target group serves either TCP or HTTP(S) listeners",
                            if *other_tcp { "TCP" } else { "HTTP" }
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    mode.insert(g, (&l.name, tcp));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[scheduler]
ca_cert = "/etc/berth/ca.pem"

[[listener]]
name = "web"
bind = "0.0.0.0:8080"
default_target_group = "web"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/berth/lb.toml"), text, None)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.scheduler.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.haproxy.slots, DEFAULT_SLOTS);
        assert_eq!(c.haproxy.mode, Mode::Supervise);
        assert_eq!(
            c.haproxy.runtime_socket,
            PathBuf::from("/var/lib/berth/lb/admin.sock")
        );
        assert_eq!(c.listeners[0].protocol, ListenerProtocol::Http);
        assert_eq!(c.haproxy.timeouts, Timeouts::default());
        let set = parse(&format!(
            "{MINIMAL}[haproxy.timeouts]\nconnect_seconds = 2\nidle_seconds = 350\n"
        ))
        .unwrap();
        assert_eq!(set.haproxy.timeouts.connect, 2);
        assert_eq!(set.haproxy.timeouts.idle, 350);
        assert_eq!(set.haproxy.timeouts.tunnel, Timeouts::default().tunnel);
        assert_eq!(c.target_groups().into_iter().collect::<Vec<_>>(), ["web"]);
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../lb.example.toml");
        let c = parse(text).unwrap();
        assert!(c.listeners.len() >= 3, "{c:?}");
    }

    #[test]
    fn the_token_comes_from_the_environment_first_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "berth_file_token\n").unwrap();
        let text = format!(
            "[scheduler]\nca_cert = \"/ca.pem\"\ntoken_file = {:?}\n{}",
            file.display().to_string(),
            MINIMAL.replace("[scheduler]\nca_cert = \"/etc/berth/ca.pem\"\n", "")
        );
        let p = Path::new("/x.toml");
        let c = Config::parse(p, &text, Some("berth_env".into())).unwrap();
        assert_eq!(c.scheduler.token.as_deref(), Some("berth_env"));
        let c = Config::parse(p, &text, None).unwrap();
        assert_eq!(c.scheduler.token.as_deref(), Some("berth_file_token"));
        assert!(!format!("{c:?}").contains("berth_file_token"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                MINIMAL.replace("[scheduler]", "[scheduler]\nendpoint = \"http://x:1\""),
                "`scheduler.endpoint`: \"http://x:1\": the scheduler speaks TLS only",
            ),
            (
                MINIMAL.replace("ca_cert = \"/etc/berth/ca.pem\"", ""),
                "`scheduler.ca_cert`: missing",
            ),
            (
                format!("{MINIMAL}[haproxy]\nslots = 0\n"),
                "`haproxy.slots`: 0: must be 1–4096",
            ),
            (
                format!("{MINIMAL}[haproxy.timeouts]\nidle_seconds = 4001\n"),
                "`haproxy.timeouts.idle_seconds`: 4001: must be 1–4000 seconds",
            ),
            (
                format!("{MINIMAL}[haproxy.timeouts]\nconnect_seconds = 0\n"),
                "`haproxy.timeouts.connect_seconds`: 0: must be 1–60 seconds",
            ),
            (
                format!("{MINIMAL}[haproxy]\nmode = \"systemd\"\n"),
                "`haproxy.mode`: \"systemd\": expected",
            ),
            (
                MINIMAL.replace("0.0.0.0:8080", "localhost:80"),
                "`listener \"web\".bind`: \"localhost:80\" is not an address:port",
            ),
            (
                format!("{MINIMAL}protocol = \"HTTPS\"\n"),
                "`listener \"web\".certificate`: required for HTTPS",
            ),
            (
                format!("{MINIMAL}protocol = \"UDP\"\n"),
                "`listener \"web\".protocol`: \"UDP\": expected HTTP, HTTPS or TCP",
            ),
            (
                MINIMAL.replace("\"web\"\nbind", "\"web site\"\nbind"),
                "`listener[0].name`: \"web site\"",
            ),
            (
                MINIMAL.replace("default_target_group = \"web\"", ""),
                "`listener \"web\".default_target_group`: missing",
            ),
            (
                format!("{MINIMAL}[[listener.rule]]\npriority = 1\ntarget_group = \"api\"\n"),
                "`listener \"web\".rule[0]`: needs a condition",
            ),
            (
                format!(
                    "{MINIMAL}[[listener.rule]]\npriority = 1\nhost = [\"a b\"]\n\
                     target_group = \"api\"\n"
                ),
                "`listener \"web\".rule[0].host`: \"a b\"",
            ),
            (
                format!(
                    "{MINIMAL}[[listener.rule]]\npriority = 5\npath_prefix = [\"/a\"]\n\
                     target_group = \"api\"\n[[listener.rule]]\npriority = 5\n\
                     path_prefix = [\"/b\"]\ntarget_group = \"api\"\n"
                ),
                "`listener \"web\".rule[1].priority`: 5 is also rule[0]'s",
            ),
            (
                format!(
                    "{MINIMAL}[[listener.rule]]\npriority = 1\npath_prefix = [\"api\"]\n\
                     target_group = \"api\"\n"
                ),
                "`listener \"web\".rule[0].path_prefix`: \"api\": must start with '/'",
            ),
            (
                format!(
                    "{MINIMAL}[[listener]]\nname = \"db\"\nbind = \"0.0.0.0:5432\"\n\
                     protocol = \"TCP\"\ndefault_target_group = \"web\"\n"
                ),
                "`listener \"db\"`: target group \"web\" is also used by listener \"web\"",
            ),
            (
                MINIMAL.replace(
                    "default_target_group = \"web\"",
                    "default_target_group = \"a_b\"",
                ),
                "`listener \"web\".default_target_group`: \"a_b\" is not a target group name",
            ),
            (
                format!("{MINIMAL}colour = \"red\"\n"),
                "unknown field `colour`",
            ),
        ];
        for (text, want) in cases {
            let got = err(&text);
            assert!(got.contains(want), "want {want:?} in {got:?}");
        }
    }

    #[test]
    fn arns_are_reduced_to_names_and_hosts_to_patterns() {
        assert_eq!(
            group_name(
                "k",
                "arn:berth:elasticloadbalancing:local:000000000000:targetgroup/api/0123456789abcdef"
            )
            .unwrap(),
            "api"
        );
        assert_eq!(
            host_pattern("k", "*.Example.com").unwrap(),
            HostPattern::Wildcard("*.example.com".into())
        );
        assert_eq!(
            HostPattern::Wildcard("*.ex-ample.co?".into()).regex(),
            "^.*\\.ex-ample\\.co.$"
        );
        assert_eq!(
            host_pattern("k", "a.example.com").unwrap(),
            HostPattern::Exact("a.example.com".into())
        );
    }
}
