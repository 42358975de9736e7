//! The gRPC API over loopback: a real server (`server::run` on
//! `127.0.0.1:0`) on real sled in a temp dir, called with tonic clients.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::agent_service_client::AgentServiceClient;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::{
    agent_message, scheduler_message, AgentMessage, Attribute, CreateClusterRequest,
    DeleteClusterRequest, DeregisterTaskDefinitionRequest, DescribeClustersRequest,
    DescribeContainerInstancesRequest, DescribeTaskDefinitionRequest, Heartbeat, Hello,
    HostResources, ListClustersRequest, ListTaskDefinitionFamiliesRequest,
    ListTaskDefinitionsRequest, RegisterTaskDefinitionRequest,
};
use berth_tests::AuthedChannel;
use tonic::Code;

mod common;
use common::InProcess as Server;

async fn start() -> Server {
    Server::start().await
}

const WRAPPED: &str = include_str!("../../tests/fixtures/describe-web.json");

fn simple(family: &str) -> String {
    format!(
        r#"{{"family":"{family}","containerDefinitions":[{{"name":"c","image":"busybox","memory":32}}]}}"#
    )
}

#[tokio::test]
async fn task_definitions_register_describe_list_deregister() {
    let s = start().await;
    let mut td = TaskDefinitionServiceClient::new(s.ops.clone());

    // The describe-task-definition output (wrapper + read-only fields)
    // becomes revision 1, whatever revision it carried; again → 2.
    let r1 = td
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WRAPPED.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let t1 = r1.task_definition.unwrap();
    assert_eq!((t1.family.as_str(), t1.revision), ("web", 1));
    assert_eq!(
        t1.task_definition_arn,
        "arn:berth:ecs:local:000000000000:task-definition/web:1"
    );
    let warned: Vec<_> = r1.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(warned.contains(&"taskRoleArn"), "{warned:?}");
    assert!(warned.contains(&"executionRoleArn"), "{warned:?}");
    let r2 = td
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: WRAPPED.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r2.task_definition.unwrap().revision, 2);

    // Describe: latest ACTIVE; JSON is describe-shaped and keeps AWS-only fields.
    let d = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(d.revision, 2);
    let json: serde_json::Value = serde_json::from_str(&d.json).unwrap();
    assert_eq!(json["revision"], 2);
    assert_eq!(json["status"], "ACTIVE");
    assert_eq!(json["taskDefinitionArn"], d.task_definition_arn);
    assert_eq!(
        json["taskRoleArn"],
        "arn:aws:iam::123456789012:role/web-task"
    );
    assert_eq!(json["containerDefinitions"][1]["name"], "log-router");

    // Deregister 2 → INACTIVE, still describable; latest ACTIVE is 1.
    let dr = td
        .deregister_task_definition(DeregisterTaskDefinitionRequest {
            task_definition: "web:2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(dr.status, "INACTIVE");
    assert!(dr.deregistered_at.is_some());
    let latest = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(latest.revision, 1);
    let by_arn = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "arn:aws:ecs:eu-west-1:1:task-definition/web:2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(by_arn.status, "INACTIVE");
    // Revisions are never reused.
    let r3 = td
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: simple("web"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r3.task_definition.unwrap().revision, 3);

    // Listing and filters.
    td.register_task_definition(RegisterTaskDefinitionRequest {
        task_definition_json: simple("api"),
    })
    .await
    .unwrap();
    let list = |family: &str, status: &str, sort: &str| ListTaskDefinitionsRequest {
        family_prefix: family.into(),
        status: status.into(),
        sort: sort.into(),
        ..Default::default()
    };
    let short = |arns: Vec<String>| -> Vec<String> {
        arns.iter()
            .map(|a| berth_proto::arn::short_id(a).to_owned())
            .collect()
    };
    let active = td
        .list_task_definitions(list("", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        short(active.task_definition_arns),
        ["api:1", "web:1", "web:3"]
    );
    let inactive = td
        .list_task_definitions(list("web", "INACTIVE", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(short(inactive.task_definition_arns), ["web:2"]);
    let desc = td
        .list_task_definitions(list("web", "", "DESC"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(short(desc.task_definition_arns), ["web:3", "web:1"]);
    // Paging.
    let mut page = td
        .list_task_definitions(ListTaskDefinitionsRequest {
            max_results: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.task_definition_arns.len(), 2);
    assert!(!page.next_token.is_empty());
    page = td
        .list_task_definitions(ListTaskDefinitionsRequest {
            max_results: 2,
            next_token: page.next_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(short(page.task_definition_arns), ["web:3"]);
    assert!(page.next_token.is_empty());
    let fams = td
        .list_task_definition_families(ListTaskDefinitionFamiliesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fams.families, ["api", "web"]);

    s.stop().await;
}

#[tokio::test]
async fn errors_map_to_grpc_codes_with_field_paths() {
    let s = start().await;
    let mut td = TaskDefinitionServiceClient::new(s.ops.clone());
    let bad = r#"{"family":"bad name","containerDefinitions":[
        {"name":"a","image":"x","memory":64,"portMappings":[{"containerPort":80,"hostPort":70000}]},
        {"name":"b","memory":64}
    ]}"#;
    let e = td
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: bad.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let msg = e.message();
    for path in [
        "family:",
        "containerDefinitions[0].portMappings[0].hostPort:",
        "containerDefinitions[1].image:",
    ] {
        assert!(
            msg.lines().any(|l| l.starts_with(path)),
            "{path} missing from:\n{msg}"
        );
    }
    let e = td
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: "{not json".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let e = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "nope:1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = td
        .deregister_task_definition(DeregisterTaskDefinitionRequest {
            task_definition: "web".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "deregister needs a revision"
    );
    let e = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "web:zero".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let mut cl = ClusterServiceClient::new(s.ops.clone());
    let e = cl
        .create_cluster(CreateClusterRequest {
            cluster_name: "no spaces".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("clusterName:"), "{}", e.message());
    let e = cl
        .delete_cluster(DeleteClusterRequest {
            cluster: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = cl
        .delete_cluster(DeleteClusterRequest {
            cluster: "default".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = ContainerInstanceServiceClient::new(s.ops.clone())
        .describe_container_instances(DescribeContainerInstancesRequest {
            cluster: "ghost".into(),
            container_instances: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn clusters_crud() {
    let s = start().await;
    let mut cl = ClusterServiceClient::new(s.ops.clone());
    let c = cl
        .create_cluster(CreateClusterRequest {
            cluster_name: "prod".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(
        c.cluster_arn,
        "arn:berth:ecs:local:000000000000:cluster/prod"
    );
    assert_eq!(c.status, "ACTIVE");
    // Idempotent, as ECS.
    cl.create_cluster(CreateClusterRequest {
        cluster_name: "prod".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let arns = cl
        .list_clusters(ListClustersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cluster_arns;
    assert_eq!(arns.len(), 2);
    let d = cl
        .describe_clusters(DescribeClustersRequest {
            clusters: vec!["prod".into(), "ghost".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.clusters.len(), 1);
    assert_eq!(d.failures[0].reason, "MISSING");
    let del = cl
        .delete_cluster(DeleteClusterRequest {
            cluster: c.cluster_arn.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(del.status, "INACTIVE");
    let arns = cl
        .list_clusters(ListClustersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cluster_arns;
    assert_eq!(arns.len(), 1);
}

fn hello() -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            resources: Some(HostResources {
                cpu_units: 4096,
                memory_mib: 8000,
                port_range_start: 20000,
                port_range_end: 32767,
                reserved_tcp_ports: vec![22, 51679],
                reserved_udp_ports: vec![53],
            }),
            attributes: vec![Attribute {
                name: "ecs.availability-zone".into(),
                value: "rack-a".into(),
            }],
            agent_version: "9.9.9".into(),
            hostname: "host-1".into(),
            address: String::new(),
            // An agent of before deltas: every desired state is the whole set.
            desired_deltas: false,
        })),
    }
}

#[tokio::test]
async fn agents_authenticate_connect_and_heartbeat() {
    let s = start().await;
    let (act, code) = s.target.activation("default", 2, 0).await;
    let (reg, cert) = s.target.register(&act, &code).await.unwrap();
    assert!(reg.container_instance_arn.ends_with(&format!(
        "container-instance/default/{}",
        reg.container_instance_id
    )));

    // No client certificate: Unauthenticated. Identity never comes from the body.
    let mut anonymous = AgentServiceClient::new(s.target.channel(None).await.unwrap());
    let (_tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(4);
    let e = anonymous
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // The host's certificate: Hello → Welcome + DesiredState.
    let mut agent = AgentServiceClient::new(s.target.channel(Some(&cert)).await.unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(4);
    tx.send(hello()).await.unwrap();
    let req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut down = agent.connect(req).await.unwrap().into_inner();
    let welcome = match down.message().await.unwrap().unwrap().msg {
        Some(scheduler_message::Msg::Welcome(w)) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!(welcome.container_instance_arn, reg.container_instance_arn);
    assert_eq!(welcome.heartbeat_interval_ms, 200);
    assert!(matches!(
        down.message().await.unwrap().unwrap().msg,
        Some(scheduler_message::Msg::DesiredState(_))
    ));

    let mut ci = ContainerInstanceServiceClient::new(s.ops.clone());
    let describe = |ci: &mut ContainerInstanceServiceClient<AuthedChannel>| {
        let mut ci = ci.clone();
        async move {
            ci.describe_container_instances(DescribeContainerInstancesRequest {
                cluster: "default".into(),
                container_instances: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .container_instances
        }
    };
    let list = describe(&mut ci).await;
    assert_eq!(list.len(), 1);
    let i = &list[0];
    assert!(i.agent_connected);
    assert_eq!(i.agent_version, "9.9.9");
    assert_eq!(i.ec2_instance_id, "host-1");
    let res = |name: &str| {
        i.registered_resources
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(res("CPU").integer_value, 4096);
    assert_eq!(res("MEMORY").integer_value, 8000);
    assert_eq!(res("PORTS").string_set_value, ["22", "51679"]);
    assert_eq!(res("PORTS_UDP").string_set_value, ["53"]);
    assert_eq!(i.attributes[0].value, "rack-a");

    // Heartbeats keep it connected past the TTL (1 s in test config)...
    for seq in 0..8 {
        tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Heartbeat(Heartbeat {
                seq,
                sent_at: None,
            })),
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(describe(&mut ci).await[0].agent_connected);
    // ...and their absence disconnects it within the TTL, stream still open.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!describe(&mut ci).await[0].agent_connected);

    // A cluster with instances cannot be deleted.
    let mut cl = ClusterServiceClient::new(s.ops.clone());
    cl.create_cluster(CreateClusterRequest {
        cluster_name: "c2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (act2, code2) = s.target.activation("c2", 1, 0).await;
    s.target.register(&act2, &code2).await.unwrap();
    let e = cl
        .delete_cluster(DeleteClusterRequest {
            cluster: "c2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("container instance"),
        "{}",
        e.message()
    );
    drop(tx);
}
