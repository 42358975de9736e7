//! Backups end to end over loopback gRPC: a real scheduler (`server::run`
//! on `127.0.0.1:0`, real sled, real key file) holding a cluster, two
//! revisions of a family, a service, a token, an activation, a registered
//! instance and a secret is snapshotted through `SnapshotService` while it
//! runs (the code `berth-scheduler snapshot save` runs), the snapshot is
//! restored into a new, empty data dir, and a second scheduler started on
//! it serves all of it: the revision counter goes on, the token
//! authenticates, the instance's certificate still chains to the restored
//! CA, the activation's count holds, and the secret opens once the key
//! file is copied over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use berth_proto::v1::activation_service_client::ActivationServiceClient;
use berth_proto::v1::audit_service_client::AuditServiceClient;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use berth_proto::v1::secret_service_client::SecretServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::token_service_client::TokenServiceClient;
use berth_proto::v1::{
    CreateClusterRequest, CreateServiceRequest, CreateTokenRequest, DescribeServicesRequest,
    DescribeTaskDefinitionRequest, ListActivationsRequest, ListAuditEventsRequest,
    ListClustersRequest, ListSecretsRequest, ListTokensRequest, PutSecretRequest,
    RegisterTaskDefinitionRequest, StartTaskRequest,
};
use berth_scheduler::snapshot::{self, cli::ApiArgs};
use berth_tests::fake_agent::{FakeAgent, FakeHost};
use tonic::Code;

const VALUE: &str = "restored-s3cr3t-81d0";

mod common;
use common::InProcess as Server;

/// The scheduler on `dir`; `admin` is the bootstrap admin token of a new
/// store (ignored by a restored one, which has its tokens).
async fn start(dir: &std::path::Path, admin: &str, bootstrap: bool) -> Server {
    Server::start_in(dir, admin, bootstrap, |_| {}).await
}

fn web(image: &str) -> RegisterTaskDefinitionRequest {
    RegisterTaskDefinitionRequest {
        task_definition_json: format!(
            r#"{{"family":"web","containerDefinitions":[{{"name":"web","image":"{image}","memory":64}}]}}"#
        ),
    }
}

const APP: &str = r#"{"family":"app","containerDefinitions":[{"name":"app",
    "image":"registry.local/app","memory":64,
    "secrets":[{"name":"DB_PASSWORD","valueFrom":"db"}]}]}"#;

#[tokio::test]
async fn a_restored_snapshot_serves_everything_the_original_held() {
    let admin = berth_tests::generate_token();
    let original_dir = tempfile::tempdir().unwrap();
    let a = start(original_dir.path(), &admin, true).await;
    let ch = a.target.operator.clone();

    ClusterServiceClient::new(ch.clone())
        .create_cluster(CreateClusterRequest {
            cluster_name: "prod".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut taskdefs = TaskDefinitionServiceClient::new(ch.clone());
    for (image, revision) in [("web:1", 1), ("web:2", 2)] {
        let r = taskdefs.register_task_definition(web(image)).await.unwrap();
        assert_eq!(r.into_inner().task_definition.unwrap().revision, revision);
    }
    taskdefs
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: APP.into(),
        })
        .await
        .unwrap();
    ServiceServiceClient::new(ch.clone())
        .create_service(CreateServiceRequest {
            cluster: "prod".into(),
            service_name: "web".into(),
            task_definition: "web:2".into(),
            desired_count: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    let read_only = TokenServiceClient::new(ch.clone())
        .create_token(CreateTokenRequest {
            name: "dashboards".into(),
            role: "read-only".into(),
            expires_in: None,
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    SecretServiceClient::new(ch.clone())
        .put_secret(PutSecretRequest {
            name: "db".into(),
            value: VALUE.as_bytes().to_vec(),
        })
        .await
        .unwrap();
    // An activation for two hosts; one registers now.
    let (activation, code) = a.target.activation("prod", 2, 3600).await;
    let (reg, cert) = a.target.register(&activation, &code).await.unwrap();

    // The snapshot, through the API, while A serves.
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("berth.snap");
    let api = ApiArgs {
        endpoint: a.target.endpoint.clone(),
        ca_cert: Some(a.target.ca_pem.clone()),
        token: Some(admin.clone()),
    };
    let started = tokio::time::Instant::now();
    let saved = snapshot::cli::save(&api, &file).await.unwrap();
    let took = started.elapsed();
    eprintln!(
        "snapshot: {} bytes, {} records, saved in {took:?}",
        saved.counts.bytes, saved.counts.records
    );
    assert_eq!(saved.files, ["tls/ca.pem", "tls/ca.key"]);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!file.with_extension("snap.part").exists());
    // Audited, and refused to a smaller role.
    let events = AuditServiceClient::new(ch.clone())
        .list_audit_events(ListAuditEventsRequest {
            method: "SaveSnapshot".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].resource.as_str(), events[0].outcome.as_str()),
        ("snapshot", "OK")
    );
    let denied = snapshot::cli::save(
        &ApiArgs {
            token: Some(read_only.clone()),
            ..api.clone()
        },
        &backups.path().join("denied.snap"),
    )
    .await
    .unwrap_err();
    assert!(
        denied.to_string().contains("needs the admin role"),
        "{denied}"
    );
    assert!(!backups.path().join("denied.snap").exists());
    let original_ca = a.target.ca_pem.clone();
    a.stop().await;

    // Restore into a new dir; the key file is copied by hand, as the
    // restore tells the operator to.
    let restored_parent = tempfile::tempdir().unwrap();
    let restored_dir = restored_parent.path().join("data");
    let restored = snapshot::restore(&file, &restored_dir).unwrap();
    assert_eq!(restored.counts.records, saved.counts.records);
    assert!(!restored_dir.join("secrets.key").exists());
    std::fs::copy(
        original_dir.path().join("secrets.key"),
        restored_dir.join("secrets.key"),
    )
    .unwrap();
    // A second restore into the now non-empty dir is refused.
    let e = snapshot::restore(&file, &restored_dir).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");

    // B, without a bootstrap token: the restored tokens are the ones.
    let b = start(&restored_dir, &admin, false).await;
    assert_eq!(b.target.ca_pem, original_ca, "the CA was restored");
    let ch = b.target.operator.clone();
    let clusters = ClusterServiceClient::new(ch.clone())
        .list_clusters(ListClustersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cluster_arns;
    assert!(
        clusters.iter().any(|c| c.ends_with("cluster/prod")),
        "{clusters:?}"
    );
    let mut taskdefs = TaskDefinitionServiceClient::new(ch.clone());
    let td = taskdefs
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "web:1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert!(td.json.contains("\"web:1\""), "{}", td.json);
    let next = taskdefs
        .register_task_definition(web("web:3"))
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(next.revision, 3, "the revision counter was restored");
    let services = ServiceServiceClient::new(ch.clone())
        .describe_services(DescribeServicesRequest {
            cluster: "prod".into(),
            services: vec!["web".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(services.services.len(), 1, "{services:?}");
    assert_eq!(services.services[0].status, "ACTIVE");
    assert!(services.services[0].task_definition.ends_with("web:2"));
    let tokens = TokenServiceClient::new(ch.clone())
        .list_tokens(ListTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert!(tokens.iter().any(|t| t.name == "dashboards"), "{tokens:?}");
    // The read-only token authenticates, and stays read-only.
    let ro = berth_tests::authed(b.target.channel(None).await.unwrap(), &read_only);
    ClusterServiceClient::new(ro.clone())
        .list_clusters(ListClustersRequest::default())
        .await
        .unwrap();
    let st = ClusterServiceClient::new(ro)
        .create_cluster(CreateClusterRequest {
            cluster_name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::PermissionDenied);
    let activations = ActivationServiceClient::new(ch.clone())
        .list_activations(ListActivationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .activations;
    let act = activations
        .iter()
        .find(|x| x.activation_id == activation)
        .unwrap();
    assert_eq!((act.registration_limit, act.registrations_count), (2, 1));
    let secrets = SecretServiceClient::new(ch.clone())
        .list_secrets(ListSecretsRequest {})
        .await
        .unwrap()
        .into_inner()
        .secrets;
    assert_eq!(
        secrets
            .iter()
            .map(|s| (s.name.as_str(), s.version))
            .collect::<Vec<_>>(),
        [("db", 1)]
    );

    // The instance registered on A connects to B with its certificate
    // (it chains to the restored CA) and is handed the secret's value.
    let agent = FakeAgent::reconnect(
        &b.target,
        reg.container_instance_id.clone(),
        reg.container_instance_arn.clone(),
        cert,
        FakeHost::default(),
    )
    .await;
    let started = TaskServiceClient::new(ch.clone())
        .start_task(StartTaskRequest {
            cluster: "prod".into(),
            task_definition: "app".into(),
            container_instances: vec![agent.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(started.failures.is_empty(), "{:?}", started.failures);
    let desired = agent.desired_where(|d| d.tasks.len() == 1).await;
    assert_eq!(desired.tasks[0].secrets[0].value, VALUE);
    // The activation's count held: one more host may register, not two.
    b.target.register(&activation, &code).await.unwrap();
    let st = b.target.register(&activation, &code).await.unwrap_err();
    assert!(
        st.message().contains("registration limit (2 of 2"),
        "{st:?}"
    );
    b.stop().await;
}
