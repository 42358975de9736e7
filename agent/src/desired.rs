//! What the scheduler wants on this host: the full set of tasks with their
//! desired status. The scheduler sends the whole set on each (re)connect and
//! deltas after it; the session applies them ([`berth_proto::delta`]) and
//! keeps the whole set in a `tokio::sync::watch`; the task runtime
//! reconciles containerd to it (level-triggered: it always gets the whole set).

use std::time::Duration;

use crate::runtime::image::Credentials;

/// What a `DesiredState` message carries: the whole set, or a delta from the
/// generation the agent holds ([`berth_proto::delta`]).
pub type DesiredUpdate = berth_proto::delta::Update<DesiredTask>;

impl berth_proto::delta::Keyed for DesiredTask {
    fn key(&self) -> &str {
        &self.task_arn
    }
}

/// The scheduler's full desired set for this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    /// Rises with every change the scheduler makes to this instance's set.
    pub generation: u64,
    pub tasks: Vec<DesiredTask>,
}

/// One task the scheduler placed on this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredTask {
    pub task_arn: String,
    pub desired_status: DesiredStatus,
    /// The task definition as ECS JSON, as the scheduler validated it.
    pub task_definition_json: String,
    pub cluster: String,
    pub family: String,
    pub revision: u32,
    /// Host ports the scheduler reserved, one per published port mapping.
    pub ports: Vec<PortAssignment>,
    /// With `desired_status` STOPPED: why (ECS stopCode and stoppedReason).
    pub stop_code: Option<StopCode>,
    pub stopped_reason: String,
    /// Secret values for the containers' environment and registry logins.
    pub secrets: TaskSecrets,
    /// The target-group health checks to run while the task is RUNNING
    /// (valid ones only: the wire drops, with a warning, any it cannot run).
    pub target_checks: Vec<TargetCheck>,
    /// ECS's task group: `service:NAME` for a service's tasks (the
    /// `service` label of the task's metrics).
    pub group: String,
}

/// One target of a task the agent probes: a container port a target group
/// sends traffic to (at `host_port` on the host's address), with the
/// group's health check, resolved by the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCheck {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    pub health: TargetHealthCheck,
}

/// ELBv2's health check of a target group, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealthCheck {
    pub protocol: CheckProtocol,
    /// HTTP: the request path (starts with `/`, no spaces or controls).
    pub path: String,
    pub port: CheckPort,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that make a target healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a target unhealthy.
    pub unhealthy_threshold: u32,
    /// HTTP: the status codes that count as success.
    pub matcher: Matcher,
}

/// How a target is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckProtocol {
    /// `GET <path>`; success is a status code the matcher accepts.
    Http,
    /// Success is a TCP connection.
    Tcp,
}

/// ELB's `HealthCheckPort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckPort {
    /// `traffic-port`: the port traffic goes to.
    TrafficPort,
    Port(u16),
}

/// ELB's HTTP `Matcher`: codes and ranges, e.g. `200`, `200,202`,
/// `200-299`. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher(Vec<(u16, u16)>);

/// A matcher that is not ELB's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("matcher {0:?} is not HTTP codes like \"200\", \"200,202\" or \"200-299\"")]
pub struct MatcherError(pub String);

impl Matcher {
    /// Whether `code` counts as a success.
    pub fn accepts(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

impl std::str::FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MatcherError(s.to_owned());
        let code = |c: &str| {
            c.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(bad)
        };
        let ranges = s
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(bad());
                    }
                    Ok((lo, hi))
                }
                None => code(part).map(|c| (c, c)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(ranges))
    }
}

/// Values the scheduler resolved from its secret store for one task: the
/// containers' `secrets` as environment variables and their
/// `repositoryCredentials`. `Debug` shows names only, never a value; the
/// values go nowhere but the container's environment and the registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TaskSecrets {
    pub env: Vec<SecretEnv>,
    /// (container name, credentials)
    pub registry: Vec<(String, Credentials)>,
}

/// One environment variable of one container, from a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretEnv {
    pub container: String,
    pub name: String,
    pub value: String,
}

impl TaskSecrets {
    /// `(name, value)` of container `container`'s secret variables.
    pub fn env_for(&self, container: &str) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter(|e| e.container == container)
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    }

    pub fn has_env(&self, container: &str, name: &str) -> bool {
        self.env
            .iter()
            .any(|e| e.container == container && e.name == name)
    }

    pub fn credentials_for(&self, container: &str) -> Option<&Credentials> {
        self.registry
            .iter()
            .find(|(c, _)| c == container)
            .map(|(_, creds)| creds)
    }
}

impl std::fmt::Debug for TaskSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSecrets")
            .field(
                "env",
                &self
                    .env
                    .iter()
                    .map(|e| format!("{}/{}=<redacted>", e.container, e.name))
                    .collect::<Vec<_>>(),
            )
            .field("registry", &self.registry)
            .finish()
    }
}

/// A host port the scheduler reserved for one container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortAssignment {
    pub container_name: String,
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_port: u16,
}

pub use berth_proto::ecs::{DesiredStatus, Protocol, StopCode};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret_values() {
        let t = DesiredTask {
            secrets: TaskSecrets {
                env: vec![SecretEnv {
                    container: "web".into(),
                    name: "PW".into(),
                    value: "hunter2".into(),
                }],
                registry: vec![(
                    "web".into(),
                    Credentials {
                        username: "robot".into(),
                        password: "pa55".into(),
                    },
                )],
            },
            ..Default::default()
        };
        let text = format!("{t:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("pa55"),
            "{text}"
        );
        assert!(
            text.contains("web/PW=<redacted>") && text.contains("robot"),
            "{text}"
        );
        assert_eq!(
            t.secrets.env_for("web"),
            [("PW".to_owned(), "hunter2".to_owned())]
        );
        assert!(t.secrets.env_for("other").is_empty());
        assert_eq!(t.secrets.credentials_for("web").unwrap().username, "robot");
    }

    #[test]
    fn matchers_parse_elb_syntax() {
        let m = |s: &str| s.parse::<Matcher>();
        let one = m("200").expect("one code");
        assert!(one.accepts(200) && !one.accepts(201) && !one.accepts(503));
        let list = m("200,202").expect("a list");
        assert!(list.accepts(200) && list.accepts(202) && !list.accepts(201));
        let range = m("200-299").expect("a range");
        assert!(range.accepts(200) && range.accepts(250) && range.accepts(299));
        assert!(!range.accepts(199) && !range.accepts(300));
        let mixed = m("200-204, 301").expect("mixed");
        assert!(mixed.accepts(204) && mixed.accepts(301) && !mixed.accepts(302));
        for bad in [
            "", "ok", "200,", "299-200", "99", "600", "200-", "-", "2OO", "200;202",
        ] {
            assert_eq!(m(bad), Err(MatcherError(bad.to_owned())), "{bad:?}");
        }
    }
}
