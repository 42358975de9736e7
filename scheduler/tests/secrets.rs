//! Secrets over loopback gRPC: a real scheduler (`server::run` on
//! `127.0.0.1:0`, real sled, a real key file) and a fake agent speaking the
//! real AgentService protocol. Values go in through SecretService and come
//! out only in the desired set of the agent that runs the task.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use berth_proto::v1::secret_service_client::SecretServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    DeleteSecretRequest, DescribeTaskDefinitionRequest, DescribeTasksRequest, ListSecretsRequest,
    PutSecretRequest, RegisterTaskDefinitionRequest, StartTaskRequest, StopTaskRequest,
};
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use berth_tests::AuthedChannel;
use tonic::Code;

const VALUE: &str = "s3cr3t-value-4f1c9a";
const PASSWORD: &str = "registry-pa55-77e2";

mod common;
use common::InProcess as Server;

async fn start() -> Server {
    Server::start().await
}

async fn put(ch: &AuthedChannel, name: &str, value: &str) -> Result<u32, tonic::Status> {
    SecretServiceClient::new(ch.clone())
        .put_secret(PutSecretRequest {
            name: name.into(),
            value: value.as_bytes().to_vec(),
        })
        .await
        .map(|r| r.into_inner().secret.unwrap().version)
}

/// Both the Debug text and the wire bytes of `m`, to search for values.
fn everything<M: prost::Message + std::fmt::Debug>(m: &M) -> String {
    format!("{m:?}{}", String::from_utf8_lossy(&m.encode_to_vec()))
}

const APP: &str = r#"{"family":"app","containerDefinitions":[{"name":"app","image":"registry.local/app",
    "memory":64,
    "secrets":[{"name":"DB_PASSWORD","valueFrom":"db"},
               {"name":"API_KEY","valueFrom":"arn:aws:secretsmanager:eu-west-1:1:secret:api-key"}],
    "repositoryCredentials":{"credentialsParameter":"arn:aws:ssm:eu-west-1:1:parameter/registry"}}]}"#;

#[tokio::test]
async fn secrets_reach_only_the_agents_desired_set() {
    let s = start().await;
    let ch = &s.ops;
    let mut secrets = SecretServiceClient::new(ch.clone());

    // Put: versions rise; list shows names and versions, never values.
    assert_eq!(put(ch, "db", "first").await.unwrap(), 1);
    assert_eq!(put(ch, "db", VALUE).await.unwrap(), 2);
    let bad = put(ch, "no spaces", "x").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("name:"), "{}", bad.message());
    assert_eq!(
        put(ch, "empty", "").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let list = secrets
        .list_secrets(ListSecretsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.secrets.len(), 1);
    assert_eq!(
        (list.secrets[0].name.as_str(), list.secrets[0].version),
        ("db", 2)
    );
    assert!(!everything(&list).contains(VALUE));
    // The key file exists, 0600; the store holds no value in clear.
    use std::os::unix::fs::PermissionsExt as _;
    let key = std::fs::metadata(s.data_dir.join("secrets.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: APP.into(),
        })
        .await
        .unwrap();
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default()).await;
    let mut tasks = TaskServiceClient::new(ch.clone());
    let start_req = || StartTaskRequest {
        task_definition: "app".into(),
        container_instances: vec![agent.id.clone()],
        ..Default::default()
    };

    // Missing secrets: InvalidArgument naming each path and secret.
    let err = tasks.start_task(start_req()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "containerDefinitions[0].secrets[1].valueFrom: secret \"api-key\" does not exist; \
         create it with `berthctl secret put api-key`\n\
         containerDefinitions[0].repositoryCredentials.credentialsParameter: secret \
         \"registry\" does not exist; create it with `berthctl secret put registry`"
    );
    put(ch, "api-key", "k").await.unwrap();
    put(ch, "registry", PASSWORD).await.unwrap();
    let err = tasks.start_task(start_req()).await.unwrap_err();
    assert_eq!(
        err.message(),
        "containerDefinitions[0].repositoryCredentials.credentialsParameter: secret \
         \"registry\" must hold a JSON object with string fields \"username\" and \"password\""
    );
    assert!(!err.message().contains(PASSWORD));
    put(
        ch,
        "registry",
        &format!(r#"{{"username":"robot","password":"{PASSWORD}"}}"#),
    )
    .await
    .unwrap();

    // Started: the agent's desired set carries the values.
    let started = tasks.start_task(start_req()).await.unwrap().into_inner();
    assert!(started.failures.is_empty(), "{:?}", started.failures);
    let task_arn = started.tasks[0].task_arn.clone();
    let d = agent.desired_where(|d| d.tasks.len() == 1).await;
    let t = &d.tasks[0];
    let env: Vec<_> = t
        .secrets
        .iter()
        .map(|s| (s.container_name.as_str(), s.name.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(
        env,
        [("app", "DB_PASSWORD", VALUE), ("app", "API_KEY", "k")]
    );
    assert_eq!(t.repository_credentials[0].username, "robot");
    assert_eq!(t.repository_credentials[0].password, PASSWORD);
    assert!(!format!("{d:?}").contains(VALUE), "Debug is redacted");
    assert!(!format!("{d:?}").contains(PASSWORD), "Debug is redacted");

    // Describe outputs never contain a value.
    let described = tasks
        .describe_tasks(DescribeTasksRequest {
            cluster: String::new(),
            tasks: vec![task_arn.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.tasks.len(), 1);
    let td = TaskDefinitionServiceClient::new(ch.clone())
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "app".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for text in [
        everything(&described),
        everything(&td),
        everything(&started),
    ] {
        assert!(!text.contains(VALUE) && !text.contains(PASSWORD), "{text}");
    }

    // Deleting a secret in use is allowed; the task keeps running.
    secrets
        .delete_secret(DeleteSecretRequest { name: "db".into() })
        .await
        .unwrap();
    let gone = secrets
        .delete_secret(DeleteSecretRequest { name: "db".into() })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // A task that should stop gets no values.
    tasks
        .stop_task(StopTaskRequest {
            cluster: String::new(),
            task: task_arn.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    let d = agent
        .desired_where(|d| d.tasks.iter().any(|t| t.desired_status == "STOPPED"))
        .await;
    assert!(d.tasks[0].secrets.is_empty() && d.tasks[0].repository_credentials.is_empty());

    // Nothing in the store is in clear.
    drop(agent);
    for entry in walk(&s.data_dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes())
                && !bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes()),
            "{} holds a secret in clear",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
