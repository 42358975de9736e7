//! ECS's paging and filters of the List calls, and service deployments,
//! over loopback gRPC: a real scheduler (`server::run` on `127.0.0.1:0`,
//! real sled) and fake agents speaking the real AgentService protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::cluster_service_client::ClusterServiceClient;
use berth_proto::v1::container_instance_service_client::ContainerInstanceServiceClient;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use berth_proto::v1::task_definition_service_client::TaskDefinitionServiceClient;
use berth_proto::v1::task_service_client::TaskServiceClient;
use berth_proto::v1::{
    CreateClusterRequest, CreateServiceRequest, CreatedAtFilter, DeleteClusterRequest,
    DeploymentCircuitBreaker, DeploymentConfiguration, DescribeServiceDeploymentsRequest,
    ListClustersRequest, ListContainerInstancesRequest, ListServiceDeploymentsRequest,
    ListServicesRequest, ListTaskDefinitionFamiliesRequest, ListTaskDefinitionsRequest,
    ListTasksRequest, RegisterTaskDefinitionRequest, ServiceDeploymentBrief, StartTaskRequest,
    UpdateServiceRequest,
};
use berth_tests::fake_agent::{Autopilot, FakeAgent, FakeHost};
use berth_tests::{eventually, AuthedChannel};
use tonic::Code;

mod common;
use common::InProcess as Server;

async fn start() -> Server {
    Server::start().await
}

fn taskdef(family: &str) -> String {
    format!(
        r#"{{"family":"{family}","containerDefinitions":[{{"name":"app","image":"busybox","memory":16}}]}}"#
    )
}

async fn register(ch: &AuthedChannel, family: &str) {
    TaskDefinitionServiceClient::new(ch.clone())
        .register_task_definition(RegisterTaskDefinitionRequest {
            task_definition_json: taskdef(family),
        })
        .await
        .unwrap();
}

fn zone(z: &str) -> FakeHost {
    FakeHost {
        attributes: vec![("ecs.availability-zone".to_owned(), z.to_owned())],
        ..FakeHost::default()
    }
}

/// Follows `page(token)` to the end; every item and the number of pages.
async fn all_pages<F, Fut>(mut page: F) -> (Vec<String>, usize)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = (Vec<String>, String)>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    for pages in 1..1000 {
        let (mut got, next) = page(token).await;
        items.append(&mut got);
        if next.is_empty() {
            return (items, pages);
        }
        token = next;
    }
    panic!("the listing never ended");
}

#[tokio::test]
async fn clusters_families_and_services_page_and_refuse_bad_requests() {
    let s = start().await;
    let clusters = ClusterServiceClient::new(s.ops.clone());
    for i in 0..6 {
        clusters
            .clone()
            .create_cluster(CreateClusterRequest {
                cluster_name: format!("c{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let list = |max: i32| {
        let clusters = clusters.clone();
        move |token: String| {
            let mut clusters = clusters.clone();
            async move {
                let r = clusters
                    .list_clusters(ListClustersRequest {
                        max_results: max,
                        next_token: token,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (r.cluster_arns, r.next_token)
            }
        }
    };
    let (one_page, pages) = all_pages(list(0)).await;
    assert_eq!((one_page.len(), pages), (7, 1), "{one_page:?}");
    let (paged, pages) = all_pages(list(2)).await;
    assert_eq!(pages, 4, "7 clusters by 2");
    assert_eq!(paged, one_page, "same order, nothing repeated or lost");
    // Exactly a multiple: no token on the last full page.
    let (_, pages) = all_pages(list(7)).await;
    assert_eq!(pages, 1);

    // Stable under deletes and inserts between pages.
    let first = clusters
        .clone()
        .list_clusters(ListClustersRequest {
            max_results: 3,
            next_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = first
        .cluster_arns
        .iter()
        .map(|a| a.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2"]);
    clusters
        .clone()
        .delete_cluster(DeleteClusterRequest {
            cluster: "c2".into(),
        })
        .await
        .unwrap();
    clusters
        .clone()
        .create_cluster(CreateClusterRequest {
            cluster_name: "c00".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let second = clusters
        .clone()
        .list_clusters(ListClustersRequest {
            max_results: 3,
            next_token: first.next_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = second
        .cluster_arns
        .iter()
        .map(|a| a.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["c3", "c4", "c5"]);

    // Bad maxResults and tokens name the field.
    for bad in [-1, 101] {
        let e = clusters
            .clone()
            .list_clusters(ListClustersRequest {
                max_results: bad,
                next_token: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message()
                .starts_with("maxResults: must be between 1 and 100"),
            "{e:?}"
        );
    }
    let e = clusters
        .clone()
        .list_clusters(ListClustersRequest {
            max_results: 0,
            next_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("nextToken: "), "{e:?}");

    // A token of one listing is refused by another.
    let mut services = ServiceServiceClient::new(s.ops.clone());
    let e = services
        .list_services(ListServicesRequest {
            next_token: first.next_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // Families.
    for f in ["fa", "fb", "fc"] {
        register(&s.ops, f).await;
    }
    let td = TaskDefinitionServiceClient::new(s.ops.clone());
    let (families, pages) = all_pages(|token| {
        let mut td = td.clone();
        async move {
            let r = td
                .list_task_definition_families(ListTaskDefinitionFamiliesRequest {
                    max_results: 2,
                    next_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (r.families, r.next_token)
        }
    })
    .await;
    assert_eq!((families.len(), pages), (3, 2), "{families:?}");

    // Revisions, DESC: by family descending, then revision descending,
    // and a revision registered between pages behind the cursor is not seen.
    register(&s.ops, "fa").await;
    let desc = |token: String| {
        let mut td = td.clone();
        async move {
            let r = td
                .list_task_definitions(ListTaskDefinitionsRequest {
                    sort: "DESC".into(),
                    max_results: 2,
                    next_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (r.task_definition_arns, r.next_token)
        }
    };
    let first = desc(String::new()).await;
    let tail = |arns: &[String]| -> Vec<String> {
        arns.iter()
            .map(|a| a.rsplit('/').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(tail(&first.0), ["fc:1", "fb:1"]);
    register(&s.ops, "fc").await;
    let second = desc(first.1).await;
    assert_eq!(tail(&second.0), ["fa:2", "fa:1"]);
    assert!(second.1.is_empty());

    // Services: ECS's default page is 10.
    for i in 0..12 {
        services
            .create_service(CreateServiceRequest {
                service_name: format!("s{i:02}"),
                task_definition: "fa".into(),
                desired_count: Some(0),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let page = services
        .list_services(ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.service_arns.len(), 10);
    assert!(!page.next_token.is_empty());
    let rest = services
        .list_services(ListServicesRequest {
            next_token: page.next_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.service_arns.len(), 2);
    assert!(rest.next_token.is_empty());
    assert!(rest.service_arns[1].ends_with("/s11"));
    // Filters: launch type and scheduling strategy.
    for (launch, want) in [("EC2", 10), ("EXTERNAL", 10), ("FARGATE", 0)] {
        let r = services
            .list_services(ListServicesRequest {
                launch_type: launch.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.service_arns.len(), want, "{launch}");
    }
    let e = services
        .list_services(ListServicesRequest {
            launch_type: "SPACESHIP".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("launchType: "), "{e:?}");
    let daemons = services
        .list_services(ListServicesRequest {
            scheduling_strategy: "DAEMON".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(daemons.service_arns.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_instances_page_and_filter() {
    let s = start().await;
    let mut agents = Vec::new();
    for z in ["zone-a", "zone-b", "zone-a"] {
        agents.push(
            FakeAgent::join(&s.target, "default", zone(z))
                .await
                .autopilot(),
        );
    }
    register(&s.ops, "web").await;
    let mut tasks = TaskServiceClient::new(s.ops.clone());
    for a in &agents {
        tasks
            .start_task(StartTaskRequest {
                task_definition: "web".into(),
                container_instances: vec![a.id.clone()],
                count: 4,
                started_by: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let list = |req: ListTasksRequest| {
        let tasks = tasks.clone();
        move |token: String| {
            let mut tasks = tasks.clone();
            let req = ListTasksRequest {
                next_token: token,
                ..req.clone()
            };
            async move {
                let r = tasks.list_tasks(req).await.unwrap().into_inner();
                (r.task_arns, r.next_token)
            }
        }
    };
    let (whole, pages) = all_pages(list(ListTasksRequest::default())).await;
    assert_eq!((whole.len(), pages), (12, 1));
    let (paged, pages) = all_pages(list(ListTasksRequest {
        max_results: 5,
        ..Default::default()
    }))
    .await;
    assert_eq!(pages, 3);
    assert_eq!(paged, whole, "oldest first, the same order in pages");
    let (of_one, _) = all_pages(list(ListTasksRequest {
        max_results: 1,
        container_instance: agents[1].id.clone(),
        ..Default::default()
    }))
    .await;
    assert_eq!(of_one.len(), 4);
    let (fargate, _) = all_pages(list(ListTasksRequest {
        launch_type: "FARGATE".into(),
        ..Default::default()
    }))
    .await;
    assert!(fargate.is_empty());
    let e = tasks
        .list_tasks(ListTasksRequest {
            service_name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // Instances: paged by id, filtered by a CQL expression.
    let instances = ContainerInstanceServiceClient::new(s.ops.clone());
    let list_instances = |filter: &str, max: i32| {
        let instances = instances.clone();
        let filter = filter.to_owned();
        move |token: String| {
            let mut instances = instances.clone();
            let filter = filter.clone();
            async move {
                let r = instances
                    .list_container_instances(ListContainerInstancesRequest {
                        filter,
                        max_results: max,
                        next_token: token,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (r.container_instance_arns, r.next_token)
            }
        }
    };
    let (all, pages) = all_pages(list_instances("", 1)).await;
    assert_eq!((all.len(), pages), (3, 3));
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "by id");
    let (in_a, _) = all_pages(list_instances(
        "attribute:ecs.availability-zone == zone-a",
        0,
    ))
    .await;
    assert_eq!(in_a.len(), 2);
    let (busy, _) = all_pages(list_instances(
        "runningTasksCount > 3 and agentConnected == true",
        0,
    ))
    .await;
    assert_eq!(busy.len(), 3);
    let (one, _) = all_pages(list_instances(
        &format!("instanceId == {}", agents[2].id),
        0,
    ))
    .await;
    assert_eq!(one, vec![agents[2].arn.clone()]);
    let e = instances
        .clone()
        .list_container_instances(ListContainerInstancesRequest {
            filter: "attribute:zone ==".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("filter: at column"), "{e:?}");
}

async fn deployments(
    ops: &AuthedChannel,
    req: ListServiceDeploymentsRequest,
) -> Vec<ServiceDeploymentBrief> {
    ServiceServiceClient::new(ops.clone())
        .list_service_deployments(req)
        .await
        .unwrap()
        .into_inner()
        .service_deployments
}

fn of_web() -> ListServiceDeploymentsRequest {
    ListServiceDeploymentsRequest {
        service: "web".into(),
        ..Default::default()
    }
}

/// Waits until the newest service deployment of `web` has `status`.
async fn newest_is(ops: &AuthedChannel, status: &str) -> Vec<ServiceDeploymentBrief> {
    eventually(Duration::from_secs(20), status, || async {
        let d = deployments(ops, of_web()).await;
        match d.first() {
            Some(b) if b.status == status => Ok(d),
            _ => Err(format!("{d:?}")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_deployments_follow_a_rolling_update_and_a_rollback() {
    let s = start().await;
    let pilot = Autopilot {
        start_delay: Duration::from_millis(20),
        fail: Arc::new(|t| t.family == "bad"),
        ..Autopilot::default()
    };
    let _agents = [
        FakeAgent::join(&s.target, "default", zone("zone-a"))
            .await
            .autopilot_with(pilot.clone()),
        FakeAgent::join(&s.target, "default", zone("zone-b"))
            .await
            .autopilot_with(pilot),
    ];
    register(&s.ops, "web").await;
    register(&s.ops, "web").await;
    register(&s.ops, "bad").await;
    let mut services = ServiceServiceClient::new(s.ops.clone());
    services
        .create_service(CreateServiceRequest {
            service_name: "web".into(),
            task_definition: "web:1".into(),
            desired_count: Some(2),
            deployment_configuration: Some(DeploymentConfiguration {
                deployment_circuit_breaker: Some(DeploymentCircuitBreaker {
                    enable: true,
                    rollback: true,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    // Listed at once, then SUCCESSFUL.
    let d = deployments(&s.ops, of_web()).await;
    assert_eq!(d.len(), 1);
    let d = newest_is(&s.ops, "SUCCESSFUL").await;
    let first = d[0].clone();
    assert!(first.finished_at.is_some());
    assert!(first
        .service_deployment_arn
        .starts_with("arn:berth:ecs:local:000000000000:service-deployment/default/web/"));
    assert_eq!(
        first.service_arn,
        "arn:berth:ecs:local:000000000000:service/default/web"
    );

    // A rolling update to web:2.
    services
        .update_service(UpdateServiceRequest {
            service: "web".into(),
            task_definition: "web:2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let d = newest_is(&s.ops, "SUCCESSFUL").await;
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[1], first, "the first one is kept as it ended");
    let second = d[0].clone();
    let described = services
        .describe_service_deployments(DescribeServiceDeploymentsRequest {
            service_deployment_arns: vec![
                second.service_deployment_arn.clone(),
                first.service_deployment_arn.replace("/web/", "/gone/"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.failures.len(), 1);
    assert_eq!(described.failures[0].reason, "MISSING");
    let full = &described.service_deployments[0];
    assert_eq!(full.status, "SUCCESSFUL");
    let target = full.target_service_revision.as_ref().unwrap();
    assert!(
        target.task_definition.ends_with("task-definition/web:2"),
        "{target:?}"
    );
    assert_eq!(target.requested_task_count, 2);
    assert_eq!(target.arn, second.target_service_revision_arn);
    assert_eq!(full.source_service_revisions.len(), 1);
    assert!(full.source_service_revisions[0]
        .task_definition
        .ends_with("task-definition/web:1"));
    assert!(full.rollback.is_none());
    assert_eq!(
        full.deployment_circuit_breaker.as_ref().unwrap().status,
        "MONITORING_COMPLETE"
    );

    // An update whose tasks fail to start: the breaker rolls back to web:2.
    services
        .update_service(UpdateServiceRequest {
            service: "web".into(),
            task_definition: "bad:1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let d = newest_is(&s.ops, "ROLLBACK_SUCCESSFUL").await;
    assert_eq!(
        d.len(),
        3,
        "a rollback is not a new service deployment: {d:?}"
    );
    let rolled = services
        .describe_service_deployments(DescribeServiceDeploymentsRequest {
            service_deployment_arns: vec![d[0].service_deployment_arn.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .service_deployments
        .remove(0);
    let rb = rolled.rollback.as_ref().expect("rollback info");
    assert_eq!(rb.service_revision_arn, second.target_service_revision_arn);
    let breaker = rolled.deployment_circuit_breaker.as_ref().unwrap();
    assert_eq!(breaker.status, "TRIGGERED");
    assert!(breaker.failure_count >= breaker.threshold, "{breaker:?}");
    assert!(rolled
        .target_service_revision
        .as_ref()
        .unwrap()
        .task_definition
        .ends_with("bad:1"));

    // Filters and paging: newest first.
    let ok = deployments(
        &s.ops,
        ListServiceDeploymentsRequest {
            status: vec!["SUCCESSFUL".into()],
            ..of_web()
        },
    )
    .await;
    assert_eq!(ok, vec![second.clone(), first.clone()]);
    let after_first = deployments(
        &s.ops,
        ListServiceDeploymentsRequest {
            created_at: Some(CreatedAtFilter {
                after: first.created_at,
                before: None,
            }),
            ..of_web()
        },
    )
    .await;
    assert_eq!(after_first.len(), 2);
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let r = services
            .list_service_deployments(ListServiceDeploymentsRequest {
                max_results: 1,
                next_token: token,
                ..of_web()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(r.service_deployments);
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
    }
    assert_eq!(paged, d);
    for (req, field) in [
        (
            ListServiceDeploymentsRequest {
                status: vec!["DONE".into()],
                ..of_web()
            },
            "status[0]: ",
        ),
        (
            ListServiceDeploymentsRequest {
                max_results: 500,
                ..of_web()
            },
            "maxResults: ",
        ),
        (ListServiceDeploymentsRequest::default(), "service: "),
    ] {
        let e = services.list_service_deployments(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with(field), "{e:?}");
    }
    let e = services
        .list_service_deployments(ListServiceDeploymentsRequest {
            service: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = services
        .describe_service_deployments(DescribeServiceDeploymentsRequest {
            service_deployment_arns: vec!["web".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // ListTasks by service: the service's tasks only.
    let mut tasks = TaskServiceClient::new(s.ops.clone());
    let running = tasks
        .list_tasks(ListTasksRequest {
            service_name: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(running.task_arns.len(), 2, "{running:?}");
    let stopped = tasks
        .list_tasks(ListTasksRequest {
            service_name: "arn:berth:ecs:local:000000000000:service/default/web".into(),
            desired_status: "STOPPED".into(),
            max_results: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        stopped.task_arns.len() >= 10,
        "failed launches and web:1's tasks"
    );
}
