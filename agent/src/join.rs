//! `berth-agent join`: a new host into a cluster in one command, as ECS
//! Anywhere's install script does it.
//!
//! 1. Preconditions, before the activation code is spent: root, the config
//!    file (if there is one) valid, containerd answering on the configured
//!    socket, and no other registration in the state dir.
//! 2. Registration exactly as `berth-agent register` ([`crate::register`]);
//!    a host already registered under the same cluster CA skips it, so a
//!    join that failed later (systemd, the wait) can simply be run again.
//! 3. The config file gets `scheduler` and `cluster` (and `state_dir` when
//!    given), every other setting and comment kept, written atomically
//!    (temp file, fsync, rename; mode 0644).
//! 4. Unless `--no-start`: `systemctl daemon-reload` and `systemctl enable
//!    --now berth-agent.service` (`BERTH_SYSTEMCTL` names another binary, for
//!    tests), then a wait until the scheduler shows the instance connected,
//!    asked with the host's own certificate (`AgentService.DescribeSelf`).
//!
//! Each failure has its own exit code ([`exit`]), so scripts can tell them
//! apart; the messages say what to do.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_proto::trust::{self, TrustError};
use berth_proto::v1::agent_service_client::AgentServiceClient;
use berth_proto::v1::DescribeSelfRequest;
use tonic::Code;

use crate::config::{self, Config, ConfigError, Flags};
use crate::host::{HostError, HostProbe};
use crate::identity::{self, Identity, IdentityError, IdentityStore};
use crate::register::{self, RegisterArgs, RegisterError};
use crate::runtime::containerd::Containerd;
use crate::transport;
use crate::wire::{self, SelfView};

/// Exit codes of `berth-agent join` (0 is success, 2 a command-line error).
pub mod exit {
    /// Anything not listed below (a file that cannot be written, ...).
    pub const OTHER: u8 = 1;
    /// Invalid arguments or configuration: a malformed fingerprint or URL,
    /// an unreadable or invalid config file.
    pub const CONFIG: u8 = crate::EXIT_CONFIG;
    /// Not run as root.
    pub const NOT_ROOT: u8 = 65;
    /// containerd does not answer on the configured socket.
    pub const CONTAINERD: u8 = 66;
    /// The state dir holds another registration (use `--force`).
    pub const ALREADY_REGISTERED: u8 = 67;
    /// The scheduler's CA does not have the given fingerprint.
    pub const WRONG_FINGERPRINT: u8 = 68;
    /// The scheduler cannot be reached.
    pub const UNREACHABLE: u8 = 69;
    /// The scheduler refused the activation: unknown id or wrong code,
    /// revoked, expired, used up, or for another cluster than `--cluster`
    /// (the message says which).
    pub const ACTIVATION_REFUSED: u8 = 70;
    /// systemctl is missing or failed, or the unit is not installed.
    pub const SYSTEMD: u8 = 71;
    /// The agent did not connect within `--timeout`.
    pub const TIMEOUT: u8 = 72;
    /// The scheduler refuses this host's certificate (deregistered or
    /// revoked): join anew with `--force`.
    pub const IDENTITY_REFUSED: u8 = 73;
}

/// The systemd unit the agent package installs.
pub const UNIT: &str = "berth-agent.service";
/// Names the systemctl binary to run instead of `systemctl` (tests).
pub const SYSTEMCTL_ENV: &str = "BERTH_SYSTEMCTL";
/// How long containerd may take to answer the precondition check.
const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one `DescribeSelf` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two `DescribeSelf` polls.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What `join` needs.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    /// `https://host:port` of the scheduler.
    pub scheduler: String,
    /// If set, the activation must be for this cluster.
    pub cluster: Option<String>,
    /// The config file to write (and read, if it exists).
    pub config_path: PathBuf,
    /// Overrides the config file's `state_dir` (and is written to it).
    pub state_dir: Option<PathBuf>,
    pub activation_id: String,
    pub activation_code: String,
    /// `sha256:<hex>` as `berthctl activation create` prints it.
    pub ca_fingerprint: String,
    /// Replace an existing registration of another CA, or one the scheduler refuses.
    pub force: bool,
    /// Start the agent with systemd and wait for it to connect.
    pub start: bool,
    /// How long to wait for the agent to connect.
    pub timeout: Duration,
    /// The systemctl binary.
    pub systemctl: PathBuf,
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub identity: Identity,
    /// False when the host was already registered with this cluster CA.
    pub registered_now: bool,
    pub config_path: PathBuf,
    /// The scheduler's view once the agent connected (None with `--no-start`).
    pub connected: Option<SelfView>,
}

impl Joined {
    /// What `berth-agent join` prints on success.
    pub fn summary(&self) -> String {
        let id = &self.identity;
        let mut out = format!(
            "{} container instance {} in cluster {}\n{}\n",
            if self.registered_now {
                "registered as"
            } else {
                "already registered as"
            },
            id.container_instance_id,
            id.cluster,
            id.container_instance_arn
        );
        match &self.connected {
            Some(_) => out.push_str("the agent is connected\n"),
            None => out.push_str(&format!(
                "wrote {}; start the agent with `systemctl enable --now {UNIT}` or \
                 `berth-agent --config {}`\n",
                self.config_path.display(),
                self.config_path.display()
            )),
        }
        out
    }
}

/// Why the join failed; [`JoinError::exit_code`] tells the failures apart.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "berth-agent join must run as root (it writes {} and the state dir, and starts the \
         agent with systemd): run it with sudo",
        config.display()
    )]
    NotRoot { config: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("config file {}: {reason}", path.display())]
    ConfigEdit { path: PathBuf, reason: String },
    #[error(
        "containerd is not running at {}: install and start it (apt-get install containerd; \
         systemctl enable --now containerd), or set containerd_socket in {} ({cause})",
        socket.display(), config.display()
    )]
    Containerd {
        socket: PathBuf,
        config: PathBuf,
        cause: String,
    },
    #[error(
        "this host is already registered as container instance {id} of cluster {cluster} \
         ({path}), {why}; to join anew, deregister it (`berthctl instance deregister {id}`) and \
         run join again with --force"
    )]
    AlreadyRegistered {
        id: String,
        cluster: String,
        path: String,
        why: String,
    },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Register(RegisterError),
    #[error("the scheduler refused the activation: {reason}")]
    ActivationRefused { id: String, reason: String },
    #[error("cannot write config file {}: {source}", path.display())]
    WriteConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot run {}: {source}; without systemd, run the agent by hand: \
         berth-agent --config {}",
        systemctl.display(), config.display()
    )]
    SystemctlMissing {
        systemctl: PathBuf,
        config: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`systemctl {args}` failed ({status}): {stderr}{hint}; or run the agent by hand: \
         berth-agent --config {}",
        config.display()
    )]
    SystemctlFailed {
        args: String,
        status: String,
        stderr: String,
        hint: &'static str,
        config: PathBuf,
    },
    #[error(
        "the scheduler refuses this host's certificate: {reason}; deregistered hosts join \
         anew with a new activation and --force"
    )]
    IdentityRefused { reason: String },
    #[error(
        "the scheduler does not know DescribeSelf (older than this agent): check with \
         `berthctl instance ls` that instance {id} is connected"
    )]
    SchedulerTooOld { id: String },
    #[error(
        "container instance {id} did not connect within {}: {last}; see \
         `journalctl -u berth-agent` (or the agent's output if you run it by hand)",
        humantime::format_duration(*timeout)
    )]
    Timeout {
        id: String,
        timeout: Duration,
        last: String,
    },
}

impl JoinError {
    /// The process's exit code for this failure ([`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            JoinError::NotRoot { .. } => exit::NOT_ROOT,
            JoinError::Config(_) | JoinError::ConfigEdit { .. } => exit::CONFIG,
            JoinError::Containerd { .. } => exit::CONTAINERD,
            JoinError::AlreadyRegistered { .. } => exit::ALREADY_REGISTERED,
            JoinError::Identity(e) if e.is_config_error() => exit::CONFIG,
            JoinError::Host(e) if e.is_config_error() => exit::CONFIG,
            JoinError::Register(e) => match e {
                RegisterError::AlreadyRegistered { .. } => exit::ALREADY_REGISTERED,
                RegisterError::Trust(TrustError::BadFingerprint(_) | TrustError::Url { .. }) => {
                    exit::CONFIG
                }
                RegisterError::Trust(TrustError::FingerprintMismatch { .. })
                | RegisterError::CaChanged { .. } => exit::WRONG_FINGERPRINT,
                RegisterError::Trust(TrustError::Connect { .. } | TrustError::Rpc(_))
                | RegisterError::Transport(_)
                | RegisterError::Timeout(_) => exit::UNREACHABLE,
                RegisterError::Refused(s) if s.code() == Code::Unavailable => exit::UNREACHABLE,
                _ => exit::OTHER,
            },
            JoinError::ActivationRefused { .. } => exit::ACTIVATION_REFUSED,
            JoinError::SystemctlMissing { .. } | JoinError::SystemctlFailed { .. } => exit::SYSTEMD,
            JoinError::Timeout { .. } | JoinError::SchedulerTooOld { .. } => exit::TIMEOUT,
            JoinError::IdentityRefused { .. } => exit::IDENTITY_REFUSED,
            JoinError::Identity(_) | JoinError::Host(_) | JoinError::WriteConfig { .. } => {
                exit::OTHER
            }
        }
    }
}

/// Joins this host: checks, registers, writes the config, starts the agent
/// and waits for it (see the module's doc). `env` is the process's
/// environment (`BERTH_*` settings, as the agent reads them).
pub async fn join(args: &JoinArgs, env: &HashMap<String, String>) -> Result<Joined, JoinError> {
    trust::install_crypto_provider();
    if !nix::unistd::geteuid().is_root() {
        return Err(JoinError::NotRoot {
            config: args.config_path.clone(),
        });
    }
    // The existing file must stay readable by the agent, and the edit must
    // work, before the code is spent.
    let existing = read_existing(&args.config_path)?;
    let flags = Flags {
        config: Some(args.config_path.clone()),
        scheduler: Some(args.scheduler.clone()),
        cluster: args.cluster.clone(),
        state_dir: args.state_dir.clone(),
        advertise_address: None,
        metrics_listen: None,
    };
    let config = config::from_sources(
        existing.as_deref().map(|t| (args.config_path.as_path(), t)),
        env,
        &flags,
    )?;
    let edit_error = |reason: String| JoinError::ConfigEdit {
        path: args.config_path.clone(),
        reason,
    };
    // Checked once with a stand-in cluster; written below with the real one.
    updated_config(
        existing.as_deref(),
        &args.scheduler,
        &config.cluster,
        args.state_dir.as_deref(),
    )
    .map_err(edit_error)?;
    let expected = trust::parse_fingerprint(&args.ca_fingerprint)
        .map_err(|e| JoinError::Register(RegisterError::Trust(e)))?;

    check_containerd(&config, &args.config_path).await?;

    let store = IdentityStore::new(config.identity_path());
    let (identity, registered_now) = match reusable_identity(args, &store, &expected)? {
        Some(identity) => {
            tracing::info!(
                instance = %identity.container_instance_id,
                cluster = %identity.cluster,
                "already registered with this cluster CA; not registering again"
            );
            // A deregistered host is told so now, before systemd is touched
            // (a scheduler out of reach is the wait's business).
            if let Err(Poll::Refused(reason)) =
                describe_self(&args.scheduler, &store.load_credentials()?).await
            {
                return Err(JoinError::IdentityRefused { reason });
            }
            (identity, false)
        }
        None => (register_host(args, &config, &store).await?, true),
    };

    let text = updated_config(
        existing.as_deref(),
        &args.scheduler,
        &identity.cluster,
        args.state_dir.as_deref(),
    )
    .map_err(edit_error)?;
    write_config(&args.config_path, &text)?;
    tracing::info!(path = %args.config_path.display(), cluster = %identity.cluster, "config written");

    let mut joined = Joined {
        identity,
        registered_now,
        config_path: args.config_path.clone(),
        connected: None,
    };
    if !args.start {
        return Ok(joined);
    }
    // The packaged unit runs `berth-agent --config /etc/berth/agent.toml`
    // only if /var/lib/berth/agent/identity.json exists.
    if args.config_path != Path::new(config::DEFAULT_CONFIG_PATH)
        || config.state_dir != Path::new(config::DEFAULT_STATE_DIR)
    {
        tracing::warn!(
            config = %args.config_path.display(),
            state_dir = %config.state_dir.display(),
            unit = UNIT,
            "the unit reads /etc/berth/agent.toml and starts only if \
             /var/lib/berth/agent/identity.json exists: give it a drop-in with these paths"
        );
    }
    systemctl(&args.systemctl, &["daemon-reload"], &args.config_path)?;
    systemctl(
        &args.systemctl,
        &["enable", "--now", UNIT],
        &args.config_path,
    )?;
    tracing::info!(unit = UNIT, "agent started; waiting for it to connect");
    joined.connected = Some(
        wait_connected(
            &args.scheduler,
            &store,
            &joined.identity.container_instance_id,
            args.timeout,
        )
        .await?,
    );
    Ok(joined)
}

fn read_existing(path: &Path) -> Result<Option<String>, JoinError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }
        .into()),
    }
}

/// containerd answers its Version call on the configured socket.
async fn check_containerd(config: &Config, config_path: &Path) -> Result<(), JoinError> {
    let rc = &config.runtime;
    let fail = |cause: String| JoinError::Containerd {
        socket: rc.containerd_socket.clone(),
        config: config_path.to_owned(),
        cause,
    };
    if !rc.containerd_socket.exists() {
        return Err(fail("no such socket".to_owned()));
    }
    let version = tokio::time::timeout(CONTAINERD_TIMEOUT, async {
        let c = Containerd::connect(&rc.containerd_socket, &rc.containerd_namespace)
            .await
            .map_err(|e| transport::error_chain(&e))?;
        c.version().await.map_err(|e| transport::error_chain(&e))
    })
    .await
    .map_err(|_| fail(format!("no answer within {CONTAINERD_TIMEOUT:?}")))?
    .map_err(fail)?;
    tracing::info!(
        socket = %rc.containerd_socket.display(),
        version = %version.version,
        "containerd is running"
    );
    Ok(())
}

/// The identity in the state dir if it can be kept: the same cluster CA
/// (and cluster, if one is asked for) and no `--force`. With `--force` an
/// existing identity is moved aside (`*.replaced`); without it, another
/// registration is an error.
fn reusable_identity(
    args: &JoinArgs,
    store: &IdentityStore,
    expected: &str,
) -> Result<Option<Identity>, JoinError> {
    let Some(identity) = store.load()? else {
        return Ok(None);
    };
    let already = |why: String| JoinError::AlreadyRegistered {
        id: identity.container_instance_id.clone(),
        cluster: identity.cluster.clone(),
        path: store.path().display().to_string(),
        why,
    };
    if args.force {
        tracing::warn!(
            instance = %identity.container_instance_id,
            cluster = %identity.cluster,
            "--force: replacing this host's registration (the old instance stays in the \
             scheduler until `berthctl instance deregister`)"
        );
        move_aside(store)?;
        return Ok(None);
    }
    let pinned = store.load_credentials()?.ca_pem;
    let actual = trust::fingerprint_pem(&pinned)
        .map_err(|e| already(format!("its pinned CA cannot be read ({e})")))?;
    if actual != expected {
        return Err(already(format!("trusting another cluster CA ({actual})")));
    }
    if let Some(cluster) = args.cluster.as_deref() {
        if cluster != identity.cluster {
            return Err(already(format!("not of cluster {cluster}")));
        }
    }
    Ok(Some(identity))
}

/// Renames the identity and its TLS material to `<name>.replaced`.
fn move_aside(store: &IdentityStore) -> Result<(), JoinError> {
    let dir = store.path().parent().unwrap_or(Path::new("."));
    for name in [
        identity::IDENTITY_FILE,
        identity::CERT_FILE,
        identity::KEY_FILE,
        identity::CA_FILE,
    ] {
        let from = dir.join(name);
        let to = dir.join(format!("{name}.replaced"));
        match fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IdentityError::Write { path: from, source }.into());
            }
        }
    }
    Ok(())
}

async fn register_host(
    args: &JoinArgs,
    config: &Config,
    store: &IdentityStore,
) -> Result<Identity, JoinError> {
    let hostname = HostProbe::new(config).hostname()?;
    let register_args = RegisterArgs {
        scheduler: args.scheduler.clone(),
        activation_id: args.activation_id.clone(),
        activation_code: args.activation_code.clone(),
        ca_fingerprint: args.ca_fingerprint.clone(),
        hostname,
        cluster: args.cluster.clone(),
    };
    match register::register(&register_args, store).await {
        Ok(identity) => {
            tracing::info!(
                instance = %identity.container_instance_id,
                cluster = %identity.cluster,
                "registered"
            );
            Ok(identity)
        }
        Err(RegisterError::Refused(status))
            if matches!(
                status.code(),
                Code::PermissionDenied | Code::FailedPrecondition | Code::NotFound
            ) =>
        {
            Err(JoinError::ActivationRefused {
                id: args.activation_id.trim().to_owned(),
                reason: status.message().to_owned(),
            })
        }
        Err(e) => Err(JoinError::Register(e)),
    }
}

/// The config file's text with `scheduler`, `cluster` and (if given)
/// `state_dir` set, and everything else (settings, comments, order) kept.
/// Pure; fails on a file that is not TOML.
pub fn updated_config(
    existing: Option<&str>,
    scheduler: &str,
    cluster: &str,
    state_dir: Option<&Path>,
) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = match existing {
        Some(text) => text
            .parse()
            .map_err(|e: toml_edit::TomlError| format!("not valid TOML: {}", e.message()))?,
        None => {
            let mut doc = toml_edit::DocumentMut::new();
            doc.decor_mut().set_prefix(
                "# Written by `berth-agent join`; every setting is documented in\n\
                 # agent/agent.example.toml.\n",
            );
            doc
        }
    };
    let mut set = |key: &str, value: &str| match doc.get_mut(key) {
        // Keep the comments around an existing value.
        Some(toml_edit::Item::Value(v)) => {
            let decor = v.decor().clone();
            *v = toml_edit::Value::from(value);
            *v.decor_mut() = decor;
        }
        _ => {
            doc.insert(key, toml_edit::value(value));
        }
    };
    set("scheduler", scheduler);
    set("cluster", cluster);
    if let Some(dir) = state_dir {
        set("state_dir", &dir.to_string_lossy());
    }
    Ok(doc.to_string())
}

/// Writes the config file atomically, mode 0644: a temp file beside it,
/// fsync, rename, fsync of the directory (created 0755 if missing).
pub fn write_config(path: &Path, text: &str) -> Result<(), JoinError> {
    let err = |source| JoinError::WriteConfig {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(err)?;
    }
    berth_proto::fsutil::write_atomic(path, text.as_bytes(), 0o644).map_err(err)
}

/// Runs `systemctl args…`; a missing binary, a failure or a missing unit
/// each say how to run the agent by hand.
fn systemctl(bin: &Path, args: &[&str], config: &Path) -> Result<(), JoinError> {
    tracing::info!(systemctl = %bin.display(), args = %args.join(" "), "running");
    let out =
        Command::new(bin)
            .args(args)
            .output()
            .map_err(|source| JoinError::SystemctlMissing {
                systemctl: bin.to_owned(),
                config: config.to_owned(),
                source,
            })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let hint = if stderr.contains("not found") || stderr.contains("does not exist") {
        " (is the berth-agent package, with its unit, installed?)"
    } else {
        ""
    };
    Err(JoinError::SystemctlFailed {
        args: args.join(" "),
        status: out.status.to_string(),
        stderr,
        hint,
        config: config.to_owned(),
    })
}

/// Polls `DescribeSelf` with the host's certificate until the scheduler
/// shows the instance connected, or `timeout` passes. A scheduler that
/// cannot be reached is retried; one that refuses the certificate is not.
pub async fn wait_connected(
    scheduler: &str,
    store: &IdentityStore,
    instance: &str,
    timeout: Duration,
) -> Result<SelfView, JoinError> {
    trust::install_crypto_provider();
    let creds = store.load_credentials()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = "no answer yet".to_owned();
    loop {
        match tokio::time::timeout_at(deadline, describe_self(scheduler, &creds)).await {
            Err(_) => break,
            Ok(Ok(view)) if view.agent_connected => {
                tracing::info!(instance = %view.container_instance_id, "the agent is connected");
                return Ok(view);
            }
            Ok(Ok(view)) => {
                last = format!("the scheduler shows it {} but not connected", view.status);
            }
            Ok(Err(Poll::Refused(reason))) => return Err(JoinError::IdentityRefused { reason }),
            Ok(Err(Poll::Unimplemented)) => {
                return Err(JoinError::SchedulerTooOld {
                    id: instance.to_owned(),
                })
            }
            Ok(Err(Poll::Retry(cause))) => {
                tracing::debug!(%cause, "DescribeSelf failed; retrying");
                last = cause;
            }
        }
        if tokio::time::Instant::now() + POLL_INTERVAL >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(JoinError::Timeout {
        id: instance.to_owned(),
        timeout,
        last,
    })
}

/// Why one `DescribeSelf` poll gave no answer.
enum Poll {
    Refused(String),
    Unimplemented,
    Retry(String),
}

async fn describe_self(scheduler: &str, creds: &identity::Credentials) -> Result<SelfView, Poll> {
    let channel = transport::connect(scheduler, creds)
        .await
        .map_err(|e| Poll::Retry(e.to_string()))?;
    let answer = tokio::time::timeout(
        DESCRIBE_TIMEOUT,
        AgentServiceClient::new(channel).describe_self(DescribeSelfRequest {}),
    )
    .await
    .map_err(|_| {
        Poll::Retry(format!(
            "DescribeSelf got no answer within {DESCRIBE_TIMEOUT:?}"
        ))
    })?;
    match answer {
        Ok(r) => wire::self_view(r.into_inner()).map_err(|e| Poll::Retry(e.to_string())),
        Err(s) => Err(match s.code() {
            Code::PermissionDenied | Code::Unauthenticated => Poll::Refused(s.message().to_owned()),
            Code::Unimplemented => Poll::Unimplemented,
            _ => Poll::Retry(format!("DescribeSelf: {}", s.message())),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn a_new_config_has_the_scheduler_and_cluster() {
        let text = updated_config(None, "https://s:7400", "prod", None).unwrap();
        expect![[r#"
            # Written by `berth-agent join`; every setting is documented in
            # agent/agent.example.toml.
            scheduler = "https://s:7400"
            cluster = "prod"
        "#]]
        .assert_eq(&text);
        let config = config::from_sources(
            Some((Path::new("/etc/berth/agent.toml"), &text)),
            &HashMap::new(),
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(
            (config.scheduler.as_str(), config.cluster.as_str()),
            ("https://s:7400", "prod")
        );
    }

    #[test]
    fn an_existing_config_keeps_its_other_settings_and_comments() {
        let old = "# my host\nscheduler = \"https://old:7400\" # the old one\n\
                   reserved_memory_mib = 512\n\n[custom_attributes]\nstack = \"prod\"\n";
        let text = updated_config(
            Some(old),
            "https://new:7400",
            "default",
            Some(Path::new("/srv/berth")),
        )
        .unwrap();
        expect![[r#"
            # my host
            scheduler = "https://new:7400" # the old one
            reserved_memory_mib = 512
            cluster = "default"
            state_dir = "/srv/berth"

            [custom_attributes]
            stack = "prod"
        "#]]
        .assert_eq(&text);
    }

    #[test]
    fn a_config_that_is_not_toml_is_refused() {
        let err = updated_config(Some("scheduler = "), "https://s:7400", "c", None).unwrap_err();
        assert!(err.starts_with("not valid TOML"), "{err}");
    }

    #[test]
    fn the_config_is_written_atomically_with_mode_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/berth/agent.toml");
        write_config(&path, "cluster = \"a\"\n").unwrap();
        write_config(&path, "cluster = \"b\"\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "cluster = \"b\"\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["agent.toml"]);
    }

    #[test]
    fn every_failure_has_its_own_exit_code() {
        let codes = [
            exit::OTHER,
            exit::CONFIG,
            exit::NOT_ROOT,
            exit::CONTAINERD,
            exit::ALREADY_REGISTERED,
            exit::WRONG_FINGERPRINT,
            exit::UNREACHABLE,
            exit::ACTIVATION_REFUSED,
            exit::SYSTEMD,
            exit::TIMEOUT,
            exit::IDENTITY_REFUSED,
        ];
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
    }
}
