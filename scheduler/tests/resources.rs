//! Tags, custom attributes and DeleteTaskDefinitions over loopback gRPC: a
//! real scheduler (`server::run` on `127.0.0.1:0`, real sled, restarted on
//! the same directory where a test says so) and fake agents.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use berth_proto::v1::attribute_service_client::AttributeServiceClient;
use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::tag_service_client::TagServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateClusterRequest, CreateServiceRequest, DeleteAttributesRequest,
    DeleteTaskDefinitionsRequest, DeregisterTaskDefinitionRequest, DescribeClustersRequest,
    DescribeContainerInstancesRequest, DescribeServicesRequest, DescribeTaskDefinitionRequest,
    DescribeTasksRequest, ListAttributesRequest, ListTagsForResourceRequest,
    ListTaskDefinitionsRequest, PlacementConstraint, PutAttributesRequest,
    RegisterTaskDefinitionRequest, RunTaskRequest, StartTaskRequest, Tag, TagResourceRequest,
    TargetedAttribute, UntagResourceRequest,
};
use berth_tests::fake_agent::{report_for, FakeAgent, FakeHost};
use berth_tests::AuthedChannel;
use tonic::Code;

mod common;
use common::InProcess as Server;

/// The scheduler on `dir` (a new store, or the one a stopped server left).
async fn start(dir: &std::path::Path, admin: &str) -> Server {
    Server::start_in(dir, admin, true, |_| {}).await
}

const PREFIX: &str = "arn:berth:ecs:local:000000000000";

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn pairs(tags: &[Tag]) -> Vec<(&str, &str)> {
    tags.iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect()
}

async fn register(ch: &AuthedChannel, json: &str) {
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: json.to_owned(),
        })
        .await
        .unwrap();
}

async fn list_tags(ch: &AuthedChannel, arn: &str) -> Vec<(String, String)> {
    TagServiceClient::new(ch.clone())
        .list_tags_for_resource(ListTagsForResourceRequest {
            resource_arn: arn.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .tags
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
    "memory":64}],"tags":[{"key":"app","value":"web"}]}"#;

#[tokio::test]
async fn tags_on_every_resource_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let admin = berth_tests::generate_token();
    let s = start(dir.path(), &admin).await;
    let ops = s.ops.clone();
    let mut clusters = ClusterServiceClient::new(ops.clone());
    let mut tags = TagServiceClient::new(ops.clone());

    // CreateCluster with tags: returned on create, and by DescribeClusters
    // only with include TAGS.
    let created = clusters
        .create_cluster(CreateClusterRequest {
            cluster_name: "prod".into(),
            tags: vec![tag("team", "core"), tag("env", "prod")],
        })
        .await
        .unwrap()
        .into_inner()
        .cluster
        .unwrap();
    assert_eq!(pairs(&created.tags), [("team", "core"), ("env", "prod")]);
    let plain = clusters
        .describe_clusters(DescribeClustersRequest {
            clusters: vec!["prod".into()],
            include: vec!["STATISTICS".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(plain.clusters[0].tags.is_empty());
    let tagged = clusters
        .describe_clusters(DescribeClustersRequest {
            clusters: vec!["prod".into()],
            include: vec!["TAGS".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&tagged.clusters[0].tags).len(), 2);
    let bad = clusters
        .describe_clusters(DescribeClustersRequest {
            clusters: vec!["prod".into()],
            include: vec!["EVERYTHING".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().starts_with("include[0]:"),
        "{}",
        bad.message()
    );
    // The rules name the field.
    let bad = clusters
        .create_cluster(CreateClusterRequest {
            cluster_name: "other".into(),
            tags: vec![tag("ok", ""), tag("aws:owner", "me")],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().starts_with("tags[1].key:"),
        "{}",
        bad.message()
    );

    // A task definition's registered tags come beside it with include TAGS.
    register(&ops, WEB).await;
    let mut td = TaskDefinitionServiceClient::new(ops.clone());
    let described = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "web:1".into(),
            include: vec!["TAGS".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&described.tags), [("app", "web")]);
    let without = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "web:1".into(),
            include: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(without.tags.is_empty());

    // Tasks: RunTask's tags, DescribeTasks with include TAGS.
    let agent = FakeAgent::join(&s.target, "prod", FakeHost::default()).await;
    let mut tasks = TaskServiceClient::new(ops.clone());
    let run = tasks
        .run_task(RunTaskRequest {
            cluster: "prod".into(),
            task_definition: "web".into(),
            count: 1,
            tags: vec![tag("job", "nightly")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    let task = &run.tasks[0];
    assert_eq!(pairs(&task.tags), [("job", "nightly")]);
    let described = tasks
        .describe_tasks(DescribeTasksRequest {
            cluster: "prod".into(),
            tasks: vec![task.task_arn.clone()],
            include: vec!["TAGS".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&described.tasks[0].tags), [("job", "nightly")]);
    let described = tasks
        .describe_tasks(DescribeTasksRequest {
            cluster: "prod".into(),
            tasks: vec![task.task_arn.clone()],
            include: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(described.tasks[0].tags.is_empty());
    let started = tasks
        .start_task(StartTaskRequest {
            cluster: "prod".into(),
            task_definition: "web".into(),
            container_instances: vec![agent.id.clone()],
            tags: vec![tag("started", "by hand")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&started.tasks[0].tags), [("started", "by hand")]);

    // Services: created with tags, described with them only on request.
    let mut services = ServiceServiceClient::new(ops.clone());
    services
        .create_service(CreateServiceRequest {
            cluster: "prod".into(),
            service_name: "api".into(),
            task_definition: "web".into(),
            desired_count: Some(0),
            tags: vec![tag("tier", "front")],
            ..Default::default()
        })
        .await
        .unwrap();
    let describe_service = |include: Vec<String>| DescribeServicesRequest {
        cluster: "prod".into(),
        services: vec!["api".into()],
        include,
    };
    let plain = services
        .describe_services(describe_service(vec![]))
        .await
        .unwrap()
        .into_inner();
    assert!(plain.services[0].tags.is_empty());
    let tagged = services
        .describe_services(describe_service(vec!["TAGS".into()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&tagged.services[0].tags), [("tier", "front")]);

    // TagResource merges, UntagResource removes, on each kind of ARN.
    let arns = [
        format!("{PREFIX}:cluster/prod"),
        format!("{PREFIX}:service/prod/api"),
        task.task_arn.clone(),
        format!("{PREFIX}:task-definition/web:1"),
        agent.arn.clone(),
    ];
    for arn in &arns {
        tags.tag_resource(TagResourceRequest {
            resource_arn: arn.clone(),
            tags: vec![tag("owner", "ops"), tag("cost", "42")],
        })
        .await
        .unwrap();
        tags.tag_resource(TagResourceRequest {
            resource_arn: arn.clone(),
            tags: vec![tag("owner", "sre")],
        })
        .await
        .unwrap();
        tags.untag_resource(UntagResourceRequest {
            resource_arn: arn.clone(),
            tag_keys: vec!["cost".into(), "never-set".into()],
        })
        .await
        .unwrap();
        let got = list_tags(&ops, arn).await;
        assert!(got.contains(&kv(&[("owner", "sre")])[0]), "{arn}: {got:?}");
        assert!(!got.iter().any(|(k, _)| k == "cost"), "{arn}: {got:?}");
    }
    assert_eq!(
        list_tags(&ops, &arns[0]).await,
        kv(&[("team", "core"), ("env", "prod"), ("owner", "sre")])
    );
    // Container instances: DescribeContainerInstances with include TAGS.
    let ci = ContainerInstanceServiceClient::new(ops.clone())
        .describe_container_instances(DescribeContainerInstancesRequest {
            cluster: "prod".into(),
            container_instances: vec![agent.id.clone()],
            include: vec!["TAGS".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&ci.container_instances[0].tags), [("owner", "sre")]);

    // Errors: ECS's codes.
    let e = tags
        .list_tags_for_resource(ListTagsForResourceRequest {
            resource_arn: "prod".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("resourceArn:"), "{}", e.message());
    let e = tags
        .list_tags_for_resource(ListTagsForResourceRequest {
            resource_arn: format!("{PREFIX}:cluster/nope"),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = tags
        .tag_resource(TagResourceRequest {
            resource_arn: format!("{PREFIX}:task/other/{}", short(&task.task_arn)),
            tags: vec![tag("a", "")],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "a task of another cluster");
    let e = tags
        .tag_resource(TagResourceRequest {
            resource_arn: arns[0].clone(),
            tags: vec![tag("AWS:x", "")],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("tags[0].key:"), "{}", e.message());
    let many: Vec<Tag> = (0..48).map(|i| tag(&format!("k{i}"), "")).collect();
    let e = tags
        .tag_resource(TagResourceRequest {
            resource_arn: arns[0].clone(),
            tags: many,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "3 + 48 > 50");
    assert_eq!(list_tags(&ops, &arns[0]).await.len(), 3);

    // A restart keeps every tag.
    let before: Vec<_> = {
        let mut v = Vec::new();
        for arn in &arns {
            v.push(list_tags(&ops, arn).await);
        }
        v
    };
    drop(agent);
    s.stop().await;
    let s = start(dir.path(), &admin).await;
    for (arn, want) in arns.iter().zip(before) {
        assert_eq!(list_tags(&s.ops.clone(), arn).await, want, "{arn}");
    }
    s.stop().await;
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

fn attr(name: &str, value: &str, target: &str) -> TargetedAttribute {
    TargetedAttribute {
        name: name.to_owned(),
        value: value.to_owned(),
        target_type: "container-instance".to_owned(),
        target_id: target.to_owned(),
    }
}

async fn list_attributes(
    ch: &AuthedChannel,
    name: &str,
    value: &str,
) -> Vec<(String, String, String)> {
    AttributeServiceClient::new(ch.clone())
        .list_attributes(ListAttributesRequest {
            cluster: String::new(),
            target_type: "container-instance".into(),
            attribute_name: name.into(),
            attribute_value: value.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .attributes
        .into_iter()
        .map(|a| (short(&a.target_id).to_owned(), a.name, a.value))
        .collect()
}

const SMALL: &str = r#"{"family":"small","containerDefinitions":[{"name":"c","image":"busybox",
    "memory":16}]}"#;

async fn run_gold(ch: &AuthedChannel) -> berth_proto::v1::RunTaskResponse {
    TaskServiceClient::new(ch.clone())
        .run_task(RunTaskRequest {
            task_definition: "small".into(),
            count: 1,
            placement_constraints: vec![PlacementConstraint {
                r#type: "memberOf".into(),
                expression: "attribute:tier == gold".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn custom_attributes_place_tasks_and_survive_reconnects_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let admin = berth_tests::generate_token();
    let s = start(dir.path(), &admin).await;
    let ops = s.ops.clone();
    register(&ops, SMALL).await;
    let host = FakeHost {
        attributes: vec![("ecs.os-type".into(), "linux".into())],
        ..FakeHost::default()
    };
    let a = FakeAgent::join(&s.target, "default", host.clone()).await;
    let b = FakeAgent::join(&s.target, "default", host.clone()).await;
    let mut attrs = AttributeServiceClient::new(ops.clone());

    // No instance is gold yet.
    let none = run_gold(&ops).await;
    assert!(none.tasks.is_empty());

    let put = attrs
        .put_attributes(PutAttributesRequest {
            cluster: String::new(),
            attributes: vec![attr("tier", "gold", &b.arn), attr("gpu", "", &b.id)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.attributes.len(), 2);
    assert_eq!(put.attributes[1].target_id, b.arn, "ids come back as ARNs");
    let placed = run_gold(&ops).await;
    assert_eq!(placed.tasks.len(), 1, "{:?}", placed.failures);
    assert_eq!(placed.tasks[0].container_instance_arn, b.arn);

    // ListAttributes: by name, by name and value, built-in ones included.
    assert_eq!(
        list_attributes(&ops, "tier", "").await,
        [(b.id.clone(), "tier".into(), "gold".into())]
    );
    assert_eq!(list_attributes(&ops, "tier", "silver").await, []);
    assert_eq!(list_attributes(&ops, "ecs.os-type", "").await.len(), 2);
    let e = attrs
        .list_attributes(ListAttributesRequest {
            target_type: "container-instance".into(),
            attribute_value: "gold".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = attrs
        .list_attributes(ListAttributesRequest::default())
        .await
        .unwrap_err();
    assert!(e.message().starts_with("targetType:"), "{}", e.message());
    let page = attrs
        .list_attributes(ListAttributesRequest {
            target_type: "container-instance".into(),
            max_results: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.attributes.len(), 1);
    assert_eq!(page.next_token, "1");

    // Built-in attributes and unknown targets are refused; nothing applies.
    let e = attrs
        .put_attributes(PutAttributesRequest {
            cluster: String::new(),
            attributes: vec![attr("ecs.os-type", "windows", &a.id)],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("attributes[0].name:"),
        "{}",
        e.message()
    );
    let e = attrs
        .delete_attributes(DeleteAttributesRequest {
            cluster: String::new(),
            attributes: vec![attr("ecs.os-type", "", &a.id)],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = attrs
        .put_attributes(PutAttributesRequest {
            cluster: String::new(),
            attributes: vec![attr("tier", "gold", &a.id), attr("tier", "gold", "nope")],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(list_attributes(&ops, "tier", "gold").await.len(), 1);

    // The agent reconnects (a new Hello): the custom attributes stay.
    let (id, arn, cert) = (b.id.clone(), b.arn.clone(), b.cert.clone());
    drop(b);
    let b = FakeAgent::reconnect(&s.target, id, arn, cert, host.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list_attributes(&ops, "tier", "gold").await.len(), 1);

    // And across a restart of the scheduler.
    drop((a, b));
    s.stop().await;
    let s = start(dir.path(), &admin).await;
    let ops = s.ops.clone();
    assert_eq!(
        list_attributes(&ops, "tier", "").await,
        [(
            short(&placed.tasks[0].container_instance_arn).to_owned(),
            "tier".into(),
            "gold".into()
        )]
    );

    // DeleteAttributes (the value is ignored): no gold instance is left.
    let mut attrs = AttributeServiceClient::new(ops.clone());
    let target = placed.tasks[0].container_instance_arn.clone();
    attrs
        .delete_attributes(DeleteAttributesRequest {
            cluster: String::new(),
            attributes: vec![attr("tier", "whatever", &target)],
        })
        .await
        .unwrap();
    assert_eq!(list_attributes(&ops, "tier", "").await, []);
    assert_eq!(list_attributes(&ops, "gpu", "").await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn delete_task_definitions_takes_inactive_revisions_only() {
    let dir = tempfile::tempdir().unwrap();
    let admin = berth_tests::generate_token();
    let s = start(dir.path(), &admin).await;
    let ops = s.ops.clone();
    register(&ops, SMALL).await; // 1
    register(&ops, SMALL).await; // 2
    let mut td = TaskDefinitionServiceClient::new(ops.clone());
    let delete = |names: &[&str]| DeleteTaskDefinitionsRequest {
        task_definitions: names.iter().map(|n| (*n).to_owned()).collect(),
    };

    // ACTIVE: a failure, nothing deleted; unknown: a failure too.
    let out = td
        .delete_task_definitions(delete(&["small:1", "small:9"]))
        .await
        .unwrap()
        .into_inner();
    assert!(out.task_definitions.is_empty());
    assert_eq!(out.failures.len(), 2);
    assert_eq!(
        out.failures[0].arn,
        format!("{PREFIX}:task-definition/small:1")
    );
    assert!(
        out.failures[0].reason.contains("ACTIVE"),
        "{:?}",
        out.failures
    );
    // Requests ECS refuses outright.
    for bad in [vec![], vec!["small"], vec!["small:1"; 11]] {
        let e = td.delete_task_definitions(delete(&bad)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
    }

    // A task uses revision 1: after deregister and delete it is
    // DELETE_IN_PROGRESS, still described, never listed or run.
    let agent = FakeAgent::join(&s.target, "default", FakeHost::default()).await;
    let mut tasks = TaskServiceClient::new(ops.clone());
    let started = tasks
        .start_task(StartTaskRequest {
            task_definition: "small:1".into(),
            container_instances: vec![agent.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.tasks.len(), 1, "{:?}", started.failures);
    for rev in ["small:1", "small:2"] {
        td.deregister_task_definition(DeregisterTaskDefinitionRequest {
            task_definition: rev.into(),
        })
        .await
        .unwrap();
    }
    let out = td
        .delete_task_definitions(delete(&[
            "small:1",
            &format!("{PREFIX}:task-definition/small:2"),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let statuses: Vec<_> = out
        .task_definitions
        .iter()
        .map(|t| (t.revision, t.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [(1, "DELETE_IN_PROGRESS"), (2, "DELETE_IN_PROGRESS")]
    );
    let described = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "small:1".into(),
            include: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(described.status, "DELETE_IN_PROGRESS");
    let json: serde_json::Value = serde_json::from_str(&described.json).unwrap();
    assert_eq!(json["status"], "DELETE_IN_PROGRESS");
    // Revision 2 had no task: gone at once.
    let e = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "small:2".into(),
            include: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    for status in ["ACTIVE", "INACTIVE", "ALL"] {
        let listed = td
            .list_task_definitions(ListTaskDefinitionsRequest {
                status: status.into(),
                ..Default::default()
            })
            .await;
        if let Ok(listed) = listed {
            assert!(
                listed.into_inner().task_definition_arns.is_empty(),
                "{status}"
            );
        }
    }
    let e = tasks
        .start_task(StartTaskRequest {
            task_definition: "small:1".into(),
            container_instances: vec![agent.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Once its task is STOPPED, the next DeleteTaskDefinitions removes it.
    let d = agent.desired_where(|d| d.tasks.len() == 1).await;
    agent.report(report_for(&d.tasks[0], "STOPPED")).await;
    let id = short(&started.tasks[0].task_arn).to_owned();
    for _ in 0..100 {
        let t = tasks
            .describe_tasks(DescribeTasksRequest {
                cluster: String::new(),
                tasks: vec![id.clone()],
                include: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        if t.tasks[0].last_status == "STOPPED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (Any call sweeps; this one names a revision that never was.)
    let out = td
        .delete_task_definitions(delete(&["small:9"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.failures.len(), 1);
    let e = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "small:1".into(),
            include: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // Revisions are never reused.
    register(&ops, SMALL).await;
    let r3 = td
        .describe_task_definition(DescribeTaskDefinitionRequest {
            task_definition: "small".into(),
            include: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .task_definition
        .unwrap();
    assert_eq!(r3.revision, 3);
    drop(agent);
    s.stop().await;
}
