//! What the scheduler wants on this host: the full set of tasks with their
//! desired status, as the last `DesiredState` message said. The session keeps
//! the latest one in a `tokio::sync::watch`; the task runtime reconciles
//! containerd to it (level-triggered: it always gets the whole set).

use crate::runtime::image::Credentials;

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
}
