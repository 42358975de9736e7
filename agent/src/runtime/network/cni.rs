//! The CNI protocol, as a runtime speaks it (spec 1.0.0): building each
//! plugin's network configuration from a conflist (name, `cniVersion`,
//! `runtimeConfig` for declared capabilities, `prevResult`), executing the
//! plugin with the `CNI_*` environment, and reading its result or its error
//! object `{code, msg, details}`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::NetworkError;

/// The spec version Berth speaks; Debian's plugins (1.1.1) support it.
pub const CNI_VERSION: &str = "1.0.0";

/// How long one plugin may run before it counts as failed.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Del,
    Check,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
        }
    }
}

/// The per-invocation arguments that travel in the environment.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
}

/// Where plugins are looked up, in order; also passed as `CNI_PATH` so that
/// plugins find their delegates (`bridge` runs `host-local`).
#[derive(Debug, Clone)]
pub struct PluginPath {
    dirs: Vec<PathBuf>,
}

impl PluginPath {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// The first executable file named `plugin` in the directories.
    pub fn find(&self, plugin: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| is_executable(p))
    }

    fn cni_path(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The network configuration one plugin of `conflist` reads on stdin: the
/// plugin's own object plus the list's `name` and `cniVersion`, the
/// `runtimeConfig` keys its `capabilities` ask for, and `prevResult`.
pub fn plugin_config(
    conflist: &Value,
    plugin: &Value,
    runtime_config: &Map<String, Value>,
    prev_result: Option<&Value>,
) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), conflist["name"].clone());
    conf.insert("cniVersion".into(), conflist["cniVersion"].clone());
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        let wanted: Map<String, Value> = caps
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .filter_map(|(k, _)| runtime_config.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        if !wanted.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(wanted));
        }
    }
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    Value::Object(conf)
}

/// The plugin's `type`, which names its binary.
pub fn plugin_type(plugin: &Value) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// A CNI error object.
#[derive(Debug, Deserialize)]
struct ErrorJson {
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// Runs one plugin. ADD and CHECK return the parsed stdout (the result for
/// ADD); DEL returns `Value::Null`. A failing plugin becomes
/// [`NetworkError::Plugin`] when it printed a CNI error object.
pub async fn exec(
    path: &PluginPath,
    plugin: &str,
    command: Verb,
    args: &Args<'_>,
    config: &Value,
) -> Result<Value, NetworkError> {
    let binary = path
        .find(plugin)
        .ok_or_else(|| NetworkError::MissingPlugin {
            plugin: plugin.to_owned(),
            searched: path.dirs().to_vec(),
        })?;
    let stdin = serde_json::to_vec(config).map_err(|e| NetworkError::PluginOutput {
        plugin: plugin.to_owned(),
        reason: format!("cannot encode its configuration: {e}"),
    })?;
    let mut child = Command::new(&binary)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", args.container_id)
        .env("CNI_NETNS", args.netns)
        .env("CNI_IFNAME", args.ifname)
        .env("CNI_PATH", path.cni_path())
        .env_remove("CNI_ARGS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NetworkError::PluginExec {
            plugin: plugin.to_owned(),
            source,
        })?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(&stdin)
            .await
            .map_err(|source| NetworkError::PluginExec {
                plugin: plugin.to_owned(),
                source,
            })?;
    }
    let out = tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| NetworkError::PluginOutput {
            plugin: plugin.to_owned(),
            reason: format!(
                "{} did not finish within {PLUGIN_TIMEOUT:?}",
                command.as_str()
            ),
        })?
        .map_err(|source| NetworkError::PluginExec {
            plugin: plugin.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(match serde_json::from_slice::<ErrorJson>(&out.stdout) {
            Ok(e) => NetworkError::Plugin {
                plugin: plugin.to_owned(),
                code: e.code,
                msg: e.msg,
                details: e.details,
            },
            Err(_) => NetworkError::PluginOutput {
                plugin: plugin.to_owned(),
                reason: format!(
                    "{} exited with {} without a CNI error object; stdout: {:?}; stderr: {:?}",
                    command.as_str(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            },
        });
    }
    if command == Verb::Del || out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| NetworkError::PluginOutput {
        plugin: plugin.to_owned(),
        reason: format!("its {} result is not JSON: {e}", command.as_str()),
    })
}

/// The conflist of the loopback network, run with `CNI_IFNAME=lo`.
pub fn loopback_conflist() -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": "berth-lo",
        "plugins": [{ "type": "loopback" }],
    })
}

/// What Berth reads from a CNI 1.0.0 result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub ip: Option<std::net::IpAddr>,
    pub prefix: Option<u8>,
    pub gateway: Option<std::net::IpAddr>,
    /// The host end of the veth: an interface outside the sandbox that is
    /// not the bridge.
    pub host_veth: Option<String>,
}

#[derive(Deserialize)]
struct ResultJson {
    #[serde(default)]
    interfaces: Vec<InterfaceJson>,
    #[serde(default)]
    ips: Vec<IpJson>,
}

#[derive(Deserialize)]
struct InterfaceJson {
    name: String,
    #[serde(default)]
    sandbox: Option<String>,
}

#[derive(Deserialize)]
struct IpJson {
    address: String,
    #[serde(default)]
    gateway: Option<std::net::IpAddr>,
}

/// Reads the first IPv4 address, its gateway and the host veth from a result.
pub fn summarize(result: &Value, bridge: &str) -> Result<Summary, String> {
    let r: ResultJson =
        serde_json::from_value(result.clone()).map_err(|e| format!("unexpected result: {e}"))?;
    let mut summary = Summary {
        host_veth: r
            .interfaces
            .iter()
            .find(|i| i.sandbox.as_deref().unwrap_or("").is_empty() && i.name != bridge)
            .map(|i| i.name.clone()),
        ..Summary::default()
    };
    for ip in &r.ips {
        let Some((addr, prefix)) = ip.address.split_once('/') else {
            continue;
        };
        let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
            continue;
        };
        if addr.is_ipv4() {
            summary.ip = Some(addr);
            summary.prefix = prefix.parse().ok();
            summary.gateway = ip.gateway;
            break;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_config_adds_name_version_capabilities_and_prev_result() {
        let list = json!({
            "cniVersion": "1.0.0",
            "name": "berth",
            "plugins": [
                {"type": "bridge", "bridge": "berth0"},
                {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}},
            ],
        });
        let rc: Map<String, Value> = serde_json::from_value(json!({
            "portMappings": [{"hostPort": 20001, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 1},
        }))
        .unwrap();
        let bridge = plugin_config(&list, &list["plugins"][0], &rc, None);
        assert_eq!(
            bridge,
            json!({"type": "bridge", "bridge": "berth0", "name": "berth", "cniVersion": "1.0.0"})
        );
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let portmap = plugin_config(&list, &list["plugins"][1], &rc, Some(&prev));
        assert_eq!(
            portmap,
            json!({
                "type": "portmap",
                "capabilities": {"portMappings": true, "bandwidth": false},
                "name": "berth",
                "cniVersion": "1.0.0",
                "runtimeConfig": {
                    "portMappings": [{"hostPort": 20001, "containerPort": 80, "protocol": "tcp"}]
                },
                "prevResult": {"cniVersion": "1.0.0", "ips": []},
            })
        );
    }

    #[test]
    fn summarizes_a_bridge_result() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "berth0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "veth1234abcd", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/berth-t1"},
            ],
            "ips": [
                {"interface": 2, "address": "fd00::5/64"},
                {"interface": 2, "address": "10.213.0.5/16", "gateway": "10.213.0.1"},
            ],
            "dns": {},
        });
        assert_eq!(
            summarize(&result, "berth0").unwrap(),
            Summary {
                ip: Some("10.213.0.5".parse().unwrap()),
                prefix: Some(16),
                gateway: Some("10.213.0.1".parse().unwrap()),
                host_veth: Some("veth1234abcd".into()),
            }
        );
    }
}
